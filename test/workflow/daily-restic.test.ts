import assert from 'node:assert/strict';
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { resticOptions } from '../../activities/services';
import { Restic } from '../../adapters/restic/restic';
import type { Config } from '../../config/schema';
import { calendarDay } from '../../domain/julian-day';
import { renderPathTemplate } from '../../domain/path-template';
import { formatDailySummary, startDaily } from '../../scripts/commands/run-daily';
import { connectClient } from '../../scripts/commands/temporal-client';
import type { DevServer } from '../../scripts/sandbox/temporal-dev-server';
import { supimSandbox, type SupimSandbox } from '../helpers/sandbox';
import { inProcessWorker, quietWorkerLogs, testDevServer } from '../helpers/temporal';

quietWorkerLogs();

function writeDay(template: string, isoDate: string): void {
  const folder = renderPathTemplate(template, calendarDay(isoDate));
  const when = Date.now() / 1000 - 3600;
  for (const [name, bytes] of [
    ['run.log', 500],
    ['output/ne.dat', 100_000],
  ] as const) {
    mkdirSync(dirname(join(folder, name)), { recursive: true });
    writeFileSync(join(folder, name), Buffer.alloc(bytes, name));
    utimesSync(join(folder, name), when, when);
  }
}

describe('dailySupimBackup with store.engine restic on a real dev server', () => {
  let server: DevServer;
  let box: SupimSandbox;
  let config: Config;
  let worker: { stop: () => Promise<void> };
  let outer: string;
  let restic: Restic;

  before(async () => {
    outer = mkdtempSync(join(tmpdir(), 'cluster-backup-daily-restic-'));
    const passwordFile = join(outer, 'secrets', 'restic');
    mkdirSync(join(outer, 'secrets'), { mode: 0o700 });
    writeFileSync(passwordFile, 'daily-secret-91c2\n', { mode: 0o600 });
    mkdirSync(join(outer, 'store'));
    writeFileSync(join(outer, 'store', '.cluster-backup-root'), '');
    [server, box] = await Promise.all([
      testDevServer(),
      supimSandbox({
        supim: { daysBack: 1 },
        extra: { store: { root: join(outer, 'store'), engine: 'restic', restic: { passwordFile } } },
      }),
    ]);
    config = { ...box.config, temporal: { address: server.address, namespace: 'default', taskQueue: 'daily-restic' } };
    restic = new Restic(resticOptions(config));
    await restic.init();
    worker = await inProcessWorker(config);
  });
  after(async () => {
    await worker?.stop();
    await Promise.all([server.stop(), box.cleanup()]);
    rmSync(outer, { recursive: true, force: true });
  });

  it('stores each complete day as a snapshot, adds none on an unchanged re-run, reports a broken repository', async () => {
    // daysBack 1: the run of 2026-06-15 covers 2026-166 and 2026-165.
    writeDay(box.sourceTemplate, '2026-06-15');
    writeDay(box.sourceTemplate, '2026-06-14');
    const { client, close } = await connectClient(config);
    try {
      const first = await (await startDaily(client, config, '2026-06-15')).result();
      assert.deepEqual(
        first.days.map((d) => [d.day.label, d.status, d.restic?.status]),
        [
          ['2026-166', 'copied', 'stored'],
          ['2026-165', 'copied', 'stored'],
        ],
      );
      assert.equal(first.ok, true);
      const snaps = await restic.snapshots({ tags: ['kind=supim-day'] });
      assert.deepEqual(snaps.map((s) => s.tags.find((t) => t.startsWith('day='))).sort(), [
        'day=2026-165',
        'day=2026-166',
      ]);
      assert.deepEqual(first.days.map((d) => d.restic?.snapshot).sort(), snaps.map((s) => s.short_id).sort());
      assert.match(formatDailySummary(first), /2026-166 restic: snapshot [0-9a-f]{8}, \d+ bytes added/);

      const again = await (await startDaily(client, config, '2026-06-15')).result();
      assert.deepEqual(
        again.days.map((d) => [d.status, d.restic?.status, d.restic?.bytesAdded]),
        [
          ['complete', 'unchanged', 0],
          ['complete', 'unchanged', 0],
        ],
      );
      assert.equal((await restic.snapshots()).length, 2, 'no snapshot added by the unchanged re-run');

      // A password file others may read: the repository refuses, the plain copy still happens.
      chmodSync(config.store!.restic!.passwordFile, 0o644);
      writeDay(box.sourceTemplate, '2026-06-16');
      const broken = await (await startDaily(client, config, '2026-06-16')).result();
      const day = broken.days[0]!;
      assert.equal(day.status, 'copied');
      assert.deepEqual(readdirSync(join(box.destinationRoot, '2026', '167')).sort(), ['output', 'run.log']);
      assert.equal(readFileSync(join(box.destinationRoot, '2026', '167', 'output', 'ne.dat')).length, 100_000);
      assert.equal(day.restic?.status, 'failed');
      assert.match(day.restic!.reason!, /restic password file .* accessible by others/);
      assert.doesNotMatch(JSON.stringify(broken), /daily-secret/);
      assert.equal(broken.ok, false);
      assert.match(formatDailySummary(broken), /2026-167 restic failed: /);
    } finally {
      chmodSync(config.store!.restic!.passwordFile, 0o600);
      await close();
    }
  });
});
