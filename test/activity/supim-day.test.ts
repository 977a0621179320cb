import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { calendarDay } from '../../domain/julian-day';
import { renderPathTemplate } from '../../domain/path-template';
import { writeSupimDay } from '../../scripts/sandbox/supim-data';
import { runActivity, supimSandbox, type SupimSandbox } from '../helpers/sandbox';

const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
const HOSTILE_NAMES = [
  'with space.dat',
  "single'quote.dat",
  'double"quote.dat',
  'new\nline.dat',
  'ünïcødé-数据.dat',
  '-leading-dash.dat',
  '$(touch pwned).dat',
  'semi;colon && echo.dat',
  'back\\slash.dat',
];

function allFiles(dir: string, prefix = ''): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? allFiles(join(dir, e.name), `${prefix}${e.name}/`) : [`${prefix}${e.name}`],
  );
}

for (const user of ['root', 'cbremote']) {
  describe(`SUPIM day backup over real sshd (remote user ${user})`, () => {
    let box: SupimSandbox;
    before(async () => {
      box = await supimSandbox({ user });
    });
    after(() => box.cleanup());

    it('reports a day whose folder does not exist as not yet, and writes nothing', async () => {
      const day = calendarDay('2025-02-01');
      const result = await runActivity(box.activities.backupSupimDay, day);
      assert.equal(result.status, 'not-yet');
      assert.match(result.reason ?? '', /does not exist/);
      assert.equal(existsSync(result.destination), false);
    });

    it('copies a day into <dest>/<yyyy>/<ddd>, byte for byte, and a second run copies nothing', async () => {
      const day = calendarDay('2024-12-31');
      const generated = writeSupimDay(box.sourceTemplate, day);
      const first = await runActivity(box.activities.backupSupimDay, day);
      assert.equal(first.status, 'copied');
      assert.equal(first.destination, join(box.destinationRoot, '2024', '366'));
      assert.equal(first.filesCopied, generated.files.length);
      assert.equal(first.bytesCopied, generated.bytes);
      for (const name of generated.files)
        assert.equal(sha(join(first.destination, name)), sha(join(generated.folder, name)), name);
      assert.deepEqual(allFiles(first.destination).sort(), [...generated.files].sort());

      const second = await runActivity(box.activities.backupSupimDay, day);
      assert.equal(second.status, 'complete');
      assert.equal(second.filesCopied, 0);
      assert.equal(second.filesInSource, generated.files.length);
    });

    it('copies only the files that are missing or differ', async () => {
      const day = calendarDay('2025-01-01');
      const generated = writeSupimDay(box.sourceTemplate, day, { bytesPerFile: 1000 });
      await runActivity(box.activities.backupSupimDay, day);
      const changed = join(generated.folder, generated.files[2]!);
      writeFileSync(changed, 'x'.repeat(2000));
      utimesSync(changed, 1_700_000_000, 1_700_000_000);
      const result = await runActivity(box.activities.backupSupimDay, day);
      assert.equal(result.status, 'copied');
      assert.equal(result.filesCopied, 1);
      assert.equal(result.bytesCopied, 2000);
      assert.equal(readFileSync(join(result.destination, generated.files[2]!), 'utf8'), 'x'.repeat(2000));
    });

    it('copies hostile file names intact and runs nothing they contain', async () => {
      const day = calendarDay('2026-03-01');
      const folder = renderPathTemplate(box.sourceTemplate, day);
      mkdirSync(join(folder, 'sub dir'), { recursive: true });
      for (const [i, name] of HOSTILE_NAMES.entries()) {
        writeFileSync(join(folder, name), `content ${i}`);
        writeFileSync(join(folder, 'sub dir', name), `nested ${i}`);
      }
      const result = await runActivity(box.activities.backupSupimDay, day);
      assert.equal(result.status, 'copied', result.reason);
      assert.equal(result.filesCopied, HOSTILE_NAMES.length * 2);
      for (const [i, name] of HOSTILE_NAMES.entries()) {
        assert.equal(readFileSync(join(result.destination, name), 'utf8'), `content ${i}`, name);
        assert.equal(readFileSync(join(result.destination, 'sub dir', name), 'utf8'), `nested ${i}`, name);
      }
      assert.equal(existsSync(join(folder, 'pwned')), false);
      assert.equal(existsSync('pwned'), false);
    });

    it('does not follow symlinks out of the source tree', async () => {
      const day = calendarDay('2026-03-02');
      const folder = renderPathTemplate(box.sourceTemplate, day);
      mkdirSync(folder, { recursive: true });
      writeFileSync(join(folder, 'real.dat'), 'real');
      symlinkSync('/etc', join(folder, 'escape'));
      symlinkSync('/etc/hostname', join(folder, 'secret.dat'));
      const result = await runActivity(box.activities.backupSupimDay, day);
      assert.equal(result.status, 'copied');
      assert.equal(result.filesCopied, 1);
      assert.equal(result.skippedCount, 2);
      assert.deepEqual(allFiles(result.destination), ['real.dat']);
    });

    it('keeps the old backup when the source file became shorter', async () => {
      const day = calendarDay('2026-03-03');
      const folder = renderPathTemplate(box.sourceTemplate, day);
      mkdirSync(folder, { recursive: true });
      writeFileSync(join(folder, 'ne.dat'), 'a long and good output');
      await runActivity(box.activities.backupSupimDay, day);
      writeFileSync(join(folder, 'ne.dat'), 'short');
      utimesSync(join(folder, 'ne.dat'), 1_700_000_000, 1_700_000_000);
      const result = await runActivity(box.activities.backupSupimDay, day);
      assert.equal(result.superseded.length, 1);
      const keptAt = /kept at (.*)\)$/.exec(result.superseded[0]!)?.[1];
      assert.ok(keptAt);
      assert.equal(readFileSync(keptAt, 'utf8'), 'a long and good output');
      assert.equal(readFileSync(join(result.destination, 'ne.dat'), 'utf8'), 'short');
    });

    it('treats a day still being written as not yet', async () => {
      const day = calendarDay('2026-03-04');
      const generated = writeSupimDay(box.sourceTemplate, day, { ageSeconds: 0 });
      const strict = await supimSandboxActivities(box, { settleSeconds: 600 });
      const result = await runActivity(strict.backupSupimDay, day);
      assert.equal(result.status, 'not-yet');
      assert.match(result.reason ?? '', /still being written/);
      assert.equal(existsSync(join(result.destination, generated.files[0]!)), false);
    });
  });
}

import { createActivities } from '../../activities';
import { createServices } from '../../activities/services';
import { SshSession } from '../../adapters/ssh/ssh-session';
import { parseConfig } from '../../config/load';

async function supimSandboxActivities(box: SupimSandbox, supim: Record<string, unknown>) {
  const config = parseConfig({ ...box.config, supim: { ...box.config.supim, ...supim } }, 'test', box.root);
  return createActivities({ config, services: createServices({ config, openSsh: (key) => SshSession.connect(key, config.hosts[key]!) }) });
}

describe('SUPIM day backup with sha256 verification', () => {
  let box: SupimSandbox;
  before(async () => {
    box = await supimSandbox({ supim: { verify: 'sha256' } });
  });
  after(() => box.cleanup());

  it('compares checksums computed on both ends', async () => {
    const day = calendarDay('2026-07-04');
    const generated = writeSupimDay(box.sourceTemplate, day, { bytesPerFile: 300_000 });
    const result = await runActivity(box.activities.backupSupimDay, day);
    assert.equal(result.status, 'copied');
    assert.equal(result.verifiedBy, 'sha256');
    assert.equal(statSync(join(result.destination, generated.files[0]!)).size, 300_000);
  });
});
