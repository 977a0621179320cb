import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import type { Client } from '@temporalio/client';
import type { Config } from '../../config/schema';
import { calendarDay } from '../../domain/julian-day';
import { BACKUP_JOB, BACKUP_PERIOD, BACKUP_RESULT } from '../../domain/search-attributes';
import { startDaily } from '../../scripts/commands/run-daily';
import { connectClient } from '../../scripts/commands/temporal-client';
import { stopProcess } from '../../scripts/sandbox/processes';
import { writeSupimDay } from '../../scripts/sandbox/supim-data';
import { CLI_JS } from '../../scripts/sandbox/paths';
import type { DevServer } from '../../scripts/sandbox/temporal-dev-server';
import { supimSandbox, type SupimSandbox } from '../helpers/sandbox';
import { testDevServer } from '../helpers/temporal';
import { spawnWorker, writeConfigFile } from '../helpers/worker-process';

const run = promisify(execFile);

/** Two workers as on two machines: one elsewhere (storeHost false), one on the backup host. */
describe('several workers on several machines', { concurrency: false }, () => {
  let server: DevServer;
  let box: SupimSandbox;
  let client: Client;
  let closeClient: () => Promise<void>;
  let backupHost: Config;
  let backupHostFile: string;
  let otherMachine: string;
  const workers: ChildProcess[] = [];

  before(async () => {
    // A namespace without the backup search attributes, as on a cluster nobody has set up yet.
    [server, box] = await Promise.all([testDevServer({ searchAttributes: false }), supimSandbox()]);
    const temporal = { address: server.address, namespace: 'default', taskQueue: 'multi' };
    backupHost = { ...box.config, temporal, worker: { storeHost: true } };
    otherMachine = join(box.root, 'other-machine');
    mkdirSync(otherMachine);
    // Its config names the same store paths; on this test machine they are moved aside so a write shows.
    const remoteOnly: Config = {
      ...backupHost,
      worker: { storeHost: false },
      supim: { ...backupHost.supim!, destinationRoot: join(otherMachine, 'backup') },
      mail: { ...backupHost.mail, outbox: join(otherMachine, 'outbox') },
    };
    mkdirSync(join(box.root, 'backup-host'));
    backupHostFile = writeConfigFile(join(box.root, 'backup-host'), backupHost);
    workers.push(spawnWorker(writeConfigFile(otherMachine, remoteOnly), join(otherMachine, 'worker.log')));
    ({ client, close: closeClient } = await connectClient(backupHost));
  });
  after(async () => {
    await closeClient?.();
    await Promise.all(workers.map((w) => stopProcess(w)));
    await Promise.all([server.stop(), box.cleanup()]);
  });

  it('copies only on the backup host: a worker elsewhere runs the workflow but never the store activities', async () => {
    const day = calendarDay('2026-03-01');
    const generated = writeSupimDay(box.sourceTemplate, day, { bytesPerFile: 2_000 });
    const handle = await startDaily(client, backupHost, day.isoDate);

    // Only the other machine's worker is up: the day copy waits on the store task queue, untouched.
    const pending = await waitFor(async () => {
      const { raw } = await handle.describe();
      return raw.pendingActivities?.find((a) => a.activityType?.name === 'backupSupimDay');
    }, 'the day copy to be scheduled');
    await new Promise((r) => setTimeout(r, 2_000));
    const still = (await handle.describe()).raw.pendingActivities?.[0];
    assert.equal(String(still?.state), String(pending.state));
    assert.equal(still?.attempt, 1);
    assert.equal(still?.lastStartedTime ?? null, null, 'no worker has started the copy');
    assert.equal(existsSync(join(otherMachine, 'backup')), false);

    workers.push(spawnWorker(backupHostFile, join(box.root, 'backup-host', 'worker.log')));
    const summary = await handle.result();
    const copied = summary.days.find((d) => d.day.label === '2026-060');
    assert.equal(copied?.status, 'copied', copied?.reason);
    assert.equal(copied?.destination, join(box.destinationRoot, '2026', '060'));
    assert.equal(copied.filesCopied, generated.files.length);
    for (const name of generated.files) assert.ok(existsSync(join(copied.destination, name)), name);
    assert.equal(existsSync(join(otherMachine, 'backup')), false);

    // Not registered: the run is simply not tagged (an upsert of an unknown key would wedge it).
    assert.equal((await handle.describe()).typedSearchAttributes.get(BACKUP_JOB), undefined);
  });

  it('registers the search attributes with one command (idempotent); later runs are tagged', async () => {
    const cli = (...args: string[]) => run(process.execPath, [CLI_JS, '--config', backupHostFile, ...args]);
    assert.deepEqual((await cli('search-attributes', 'register')).stdout.trim().split('\n'), [
      'BackupJob: registered',
      'BackupPeriod: registered',
      'BackupResult: registered',
      'BackupHypervisor: registered',
    ]);
    assert.deepEqual((await cli('search-attributes', 'register')).stdout.trim().split('\n'), [
      'BackupJob: already registered',
      'BackupPeriod: already registered',
      'BackupResult: already registered',
      'BackupHypervisor: already registered',
    ]);
    const handle = await startDaily(client, backupHost, '2026-03-02');
    const summary = await handle.result();
    const attributes = (await handle.describe()).typedSearchAttributes;
    assert.equal(attributes.get(BACKUP_JOB), 'daily');
    assert.equal(attributes.get(BACKUP_PERIOD), '2026-061');
    assert.equal(attributes.get(BACKUP_RESULT), summary.ok ? 'ok' : 'incomplete');
  });
});

async function waitFor<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
