import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { resticOptions } from '../../activities/services';
import { Restic } from '../../adapters/restic/restic';
import { restoreSnapshot } from '../../adapters/restic/restic-paths';
import { calendarDay, type CalendarDay } from '../../domain/julian-day';
import { renderPathTemplate } from '../../domain/path-template';
import { runActivity, supimSandbox, type SupimSandbox } from '../helpers/sandbox';

const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');

function filesUnder(dir: string, prefix = ''): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? filesUnder(join(dir, e.name), `${prefix}${e.name}/`) : [`${prefix}${e.name}`]))
    .sort();
}

/** A small day (three files, an hour old: settled) in the compute host's source folder. */
function writeSmallDay(template: string, day: CalendarDay): void {
  const folder = renderPathTemplate(template, day);
  const when = Date.now() / 1000 - 3600;
  for (const [name, bytes] of [
    ['run.log', 1000],
    ['output/ne.dat', 300_000],
    ['output/te.dat', 200_000],
  ] as const) {
    mkdirSync(dirname(join(folder, name)), { recursive: true });
    writeFileSync(join(folder, name), randomBytes(bytes));
    utimesSync(join(folder, name), when, when);
  }
}

describe('SUPIM days in the restic repository (real restic 0.14, real sshd)', () => {
  let box: SupimSandbox;
  let restic: Restic;
  let passwordFile: string;
  const day = calendarDay('2026-11-27'); // 2026-331
  const folder = () => join(box.destinationRoot, '2026', '331');

  let outer: string;

  before(async () => {
    // The store and the password live beside the sandbox (its config is made with them).
    outer = mkdtempSync(join(tmpdir(), 'cluster-backup-restic-day-'));
    passwordFile = join(outer, 'secrets', 'restic');
    box = await supimSandbox({
      extra: { store: { root: join(outer, 'store'), engine: 'restic', restic: { passwordFile } } },
    });
    mkdirSync(join(outer, 'secrets'), { mode: 0o700 });
    writeFileSync(passwordFile, 'not-in-any-log-7f3a\n', { mode: 0o600 });
    mkdirSync(box.config.store!.root);
    writeFileSync(join(box.config.store!.root, '.cluster-backup-root'), '');
    restic = new Restic(resticOptions(box.config));
    await restic.init();
  });
  after(async () => {
    await box.cleanup();
    rmSync(outer, { recursive: true, force: true });
  });

  it('a copied day becomes one snapshot tagged day=yyyy-ddd whose files are the folder`s bytes', async () => {
    writeSmallDay(box.sourceTemplate, day);
    const copy = await runActivity(box.activities.backupSupimDay, day);
    assert.equal(copy.status, 'copied');
    const stored = await runActivity(box.activities.storeSupimDayInRestic, day, copy.status);
    assert.equal(stored.status, 'stored', JSON.stringify(stored));
    assert.match(stored.snapshot!, /^[0-9a-f]{8}$/);
    assert.ok(stored.bytesAdded! > 0);
    const snaps = await restic.snapshots({ tags: ['day=2026-331'] });
    assert.equal(snaps.length, 1);
    assert.deepEqual(snaps[0]!.tags.sort(), ['day=2026-331', 'kind=supim-day']);
    assert.deepEqual(snaps[0]!.paths, [folder()]);
    const files = filesUnder(folder());
    assert.equal(files.length, 3);
    const check = join(outer, 'check');
    await restoreSnapshot(restic.env, { snapshotId: snaps[0]!.id, target: check });
    assert.deepEqual(filesUnder(join(check, folder())), files);
    for (const f of files)
      assert.equal(sha(readFileSync(join(check, folder(), f))), sha(readFileSync(join(folder(), f))), f);
  });

  it('a re-run of the unchanged day adds no snapshot; a forced backup of it adds about nothing', async () => {
    const copy = await runActivity(box.activities.backupSupimDay, day);
    assert.equal(copy.status, 'complete');
    const first = (await restic.snapshots({ tags: ['day=2026-331'] }))[0]!;
    const again = await runActivity(box.activities.storeSupimDayInRestic, day, copy.status);
    assert.deepEqual(again, { status: 'unchanged', snapshot: first.short_id, bytesAdded: 0 });
    assert.equal((await restic.snapshots({ tags: ['day=2026-331'] })).length, 1);
    // Told the folder changed (it did not): a new snapshot, but only metadata is added.
    const forced = await runActivity(box.activities.storeSupimDayInRestic, day, 'copied');
    assert.equal(forced.status, 'stored');
    assert.ok(forced.bytesAdded! < 4096, `added ${forced.bytesAdded} bytes`);
    // A day whose plain folder changed after its newest snapshot (its own snapshot failed) is stored again,
    // even when the copy found nothing to do.
    await new Promise((resolve) => setTimeout(resolve, 20));
    writeFileSync(join(folder(), 'run.log'), 'edited after the snapshot\n');
    const changed = await runActivity(box.activities.storeSupimDayInRestic, day, 'complete');
    assert.equal(changed.status, 'stored');
    assert.equal((await restic.snapshots({ tags: ['day=2026-331'] })).length, 3);
  });

  it('restore day --from restic puts the snapshot`s bytes back on the host; a missing plain folder falls back to it', async () => {
    const target = join(box.root, 'source', 'restored-a');
    const result = await runActivity(box.activities.restoreSupimDay, { day: '2026-331', to: target, from: 'restic' });
    assert.equal(result.ok, true, result.reason);
    assert.match(result.snapshot!, /^[0-9a-f]{8}$/);
    const files = filesUnder(folder());
    assert.deepEqual(filesUnder(target), files);
    for (const f of files) assert.equal(sha(readFileSync(join(target, f))), sha(readFileSync(join(folder(), f))), f);
    assert.deepEqual(readdirSync(join(box.config.store!.root, '.restic-restore')), [], 'staging removed');

    // The plain folder lost: restore day (no --from) takes the repository's copy.
    const kept = Object.fromEntries(files.map((f) => [f, sha(readFileSync(join(folder(), f)))]));
    rmSync(folder(), { recursive: true });
    const back = join(box.root, 'source', 'restored-b');
    const fallback = await runActivity(box.activities.restoreSupimDay, { day: '2026-331', to: back });
    assert.equal(fallback.ok, true, fallback.reason);
    assert.ok(fallback.snapshot);
    assert.deepEqual(Object.fromEntries(filesUnder(back).map((f) => [f, sha(readFileSync(join(back, f)))])), kept);
    // --from store does not fall back.
    await assert.rejects(
      runActivity(box.activities.restoreSupimDay, {
        day: '2026-331',
        to: join(box.root, 'source', 'c'),
        from: 'store',
      }),
      (err: unknown) => err instanceof ApplicationFailure && err.type === 'NoSuchDay',
    );
  });

  it('a password file others may read is refused (not retried), naming the file, never its content', async () => {
    chmodSync(passwordFile, 0o644);
    try {
      const other = calendarDay('2026-11-26');
      writeSmallDay(box.sourceTemplate, other);
      const copy = await runActivity(box.activities.backupSupimDay, other);
      assert.equal(copy.status, 'copied');
      await assert.rejects(runActivity(box.activities.storeSupimDayInRestic, other, copy.status), (err: unknown) => {
        assert.ok(err instanceof ApplicationFailure);
        assert.equal(err.nonRetryable, true);
        assert.match(err.message, /restic password file/);
        assert.doesNotMatch(err.message, /not-in-any-log/);
        return true;
      });
      // The plain copy stands.
      assert.ok(statSync(join(box.destinationRoot, '2026', '330')).isDirectory());
      assert.equal(filesUnder(join(box.destinationRoot, '2026', '330')).length, 3);
    } finally {
      chmodSync(passwordFile, 0o600);
    }
  });
});
