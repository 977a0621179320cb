import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { parseConfig } from '../../config/load';
import type { Config } from '../../config/schema';
import { calendarDay, isoDateInZone, julianDaysEndingOn } from '../../domain/julian-day';
import { COMMANDS } from '../../scripts/commands';
import { CLI_JS } from '../../scripts/sandbox/paths';
import { freePort } from '../../scripts/sandbox/processes';
import { writeSupimDay } from '../../scripts/sandbox/supim-data';
import type { DevServer } from '../../scripts/sandbox/temporal-dev-server';
import { supimSandbox, type SupimSandbox } from '../helpers/sandbox';
import { inProcessWorker, quietWorkerLogs, testDevServer } from '../helpers/temporal';
import { writeConfigFile } from '../helpers/worker-process';

quietWorkerLogs();
const execFileAsync = promisify(execFile);

/** `cluster-backup ...args` as an operator runs it: the compiled CLI in its own process. */
function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return cliWithEnv({}, ...args);
}

async function cliWithEnv(
  env: Record<string, string>,
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [CLI_JS, ...args], {
      env: { ...process.env, CLUSTER_BACKUP_CONFIG: '', ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout: string; stderr: string };
    if (typeof e.code !== 'number') throw err;
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** Runs a command with --json: stdout must be one JSON document. */
async function json<T = unknown>(...args: string[]): Promise<{ code: number; value: T }> {
  const { code, stdout, stderr } = await cli(...args, '--json');
  try {
    return { code, value: JSON.parse(stdout) as T };
  } catch {
    assert.fail(`${args.join(' ')} --json printed no JSON (exit ${code}): ${stdout}\n${stderr}`);
  }
}

describe('cluster-backup CLI: help, usage errors and exit codes, without a server', () => {
  it('prints --help for the program and for every command, exit 0', async () => {
    const top = await cli('--help');
    assert.equal(top.code, 0);
    assert.match(top.stdout, /^Usage: cluster-backup /);
    assert.match(top.stdout, /Exit codes:\n {2}0 {2}ok/);
    for (const { name } of COMMANDS) {
      assert.match(top.stdout, new RegExp(`\\n {2}${name[0]}\\b`), `top-level help lists ${name[0]}`);
      const help = await cli(...name, '--help');
      assert.equal(help.code, 0, `${name.join(' ')} --help: ${help.stderr}`);
      assert.match(help.stdout, new RegExp(`^Usage: cluster-backup ${name.join(' ')}\\b`), name.join(' '));
    }
  });

  it('exits 2 for no command, an unknown command or option, a bad argument, a group alone', async () => {
    for (const args of [
      [],
      ['bogus'],
      ['status', '--bogus'],
      ['run'],
      ['run', 'weekly'],
      ['trigger', 'monthly'],
      ['schedules', 'pause'],
      ['run', 'daily', '--date', '2026-02-30'],
      ['backfill', 'daily', '--from', '2026-01-02'],
      ['backfill', 'weekly', '--from', '2026-01-01', '--to', '2026-01-02'],
    ]) {
      const { code, stderr } = await cli(...args);
      assert.equal(code, 2, `${args.join(' ')}: ${stderr}`);
      assert.ok(stderr.length > 0, `${args.join(' ')} says why on stderr`);
    }
  });

  it('exits 2 for a missing or invalid config file or Temporal profile, naming the problem', async () => {
    const missing = await cli('--config', '/nonexistent/cluster-backup.yaml', 'status');
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /invalid config \/nonexistent\/cluster-backup\.yaml:\n {2}- cannot read/);

    const dir = mkdtempSync(join(tmpdir(), 'cluster-backup-cli-'));
    try {
      const file = join(dir, 'cluster-backup.yaml');
      writeFileSync(
        file,
        stringify({
          hosts: { compute: { host: '127.0.0.2', user: 'u', privateKeyFile: '/k', knownHostsFile: '/kh' } },
          supim: { host: 'compute', sourceTemplate: '/d/{yyyy}/{ddd}', destinationRoot: 'backup' },
        }),
      );
      const profile = await cliWithEnv(
        { TEMPORAL_CONFIG_FILE: join(dir, 'temporal.toml'), TEMPORAL_PROFILE: 'nope' },
        '--config',
        file,
        'status',
      );
      assert.equal(profile.code, 2, profile.stderr);
      assert.match(profile.stderr, /^Temporal connection settings: .*'nope'/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('cluster-backup CLI against a dev server: --json everywhere, words and tables', { concurrency: false }, () => {
  let server: DevServer;
  let box: SupimSandbox;
  let config: Config;
  let file: string;
  let worker: { stop: () => Promise<void> };

  before(async () => {
    [server, box] = await Promise.all([testDevServer(), supimSandbox()]);
    const storeRoot = join(box.root, 'store');
    mkdirSync(storeRoot);
    config = {
      ...box.config,
      temporal: { address: server.address, namespace: 'default', taskQueue: 'cli-test' },
      store: parseConfig({ ...box.config, store: { root: storeRoot } }, 'store', box.root).store!,
    };
    file = writeConfigFile(box.root, config);
    worker = await inProcessWorker(config);
    writeSupimDay(box.sourceTemplate, calendarDay('2026-11-27'), { bytesPerFile: 100, ageSeconds: 3600 });
  });
  after(async () => {
    await worker?.stop();
    await Promise.all([server?.stop(), box?.cleanup()]);
  });

  it('checks the config: JSON with where Temporal is reached, and no secret', async () => {
    const { code, value } = await json<{ temporal: { address: string; sources: { address: string } } }>(
      '--config',
      file,
      'config',
      'check',
    );
    assert.equal(code, 0);
    assert.equal(value.temporal.address, server.address);
    assert.equal(value.temporal.sources.address, 'config file');
    const text = await cli('--config', file, 'config', 'check');
    assert.match(text.stdout, new RegExp(`temporal: ${server.address} \\(from config file\\), namespace default`));
  });

  it('applies and lists schedules in words, pauses and unpauses, triggers', async () => {
    const applied = await json<{ scheduleId: string; change: string }[]>('--config', file, 'schedules', 'apply');
    assert.deepEqual(
      applied.value.map((r) => `${r.scheduleId}: ${r.change}`),
      ['cluster-backup-daily: created', 'cluster-backup-watchdog: created'],
    );
    const listed = await json<{ scheduleId: string; exists: boolean; when?: string; nextLocal?: string }[]>(
      '--config',
      file,
      'schedules',
      'list',
    );
    assert.equal(listed.code, 0);
    assert.deepEqual(
      listed.value.map((s) => [s.scheduleId, s.exists, s.when]),
      [
        ['cluster-backup-daily', true, 'daily at 03:00'],
        ['cluster-backup-weekly', false, undefined],
        ['cluster-backup-watchdog', true, 'hourly'],
        ['cluster-backup-guardian', false, undefined],
      ],
    );
    let words = (await cli('--config', file, 'schedules', 'list')).stdout.split('\n');
    assert.match(
      words[0]!,
      /^cluster-backup-daily: daily at 03:00 America\/Sao_Paulo, next \d{4}-\d\d-\d\d 03:00, last: none yet$/,
    );
    assert.equal(words[1], 'cluster-backup-weekly: not created (schedules apply creates it when the config needs it)');
    assert.match(words[2]!, /^cluster-backup-watchdog: hourly, next \d{4}-\d\d-\d\d \d\d:\d\d UTC, last: none yet$/);

    const paused = await json<{ paused: boolean }>('--config', file, 'schedules', 'pause', 'daily');
    assert.deepEqual([paused.code, paused.value.paused], [0, true]);
    words = (await cli('--config', file, 'schedules', 'list')).stdout.split('\n');
    assert.match(words[0]!, /^cluster-backup-daily: PAUSED, daily at 03:00 America\/Sao_Paulo, next - \(paused\)/);
    assert.equal(
      (await cli('--config', file, 'schedules', 'unpause', 'daily')).stdout.trim(),
      'cluster-backup-daily: unpaused',
    );

    // The triggered run covers today and the days before: their data is there, so it ends ok.
    const today = isoDateInZone(new Date(), config.supim!.timeZone);
    for (const day of julianDaysEndingOn(today, config.supim!.daysBack))
      writeSupimDay(box.sourceTemplate, day, { bytesPerFile: 100, ageSeconds: 3600 });
    const triggered = await json<{ triggered: boolean }>('--config', file, 'trigger', 'daily');
    assert.deepEqual([triggered.code, triggered.value.triggered], [0, true]);
    const deadline = Date.now() + 60_000;
    for (;;) {
      words = (await cli('--config', file, 'schedules', 'list')).stdout.split('\n');
      if (/last: (ok|incomplete|failed)/.test(words[0]!) || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    assert.match(words[0]!, /, last: ok \(supim-scheduled-\S+\)$/);
  });

  it('runs the daily job and a backfill with --json, exit code as the summary says', async () => {
    const daily = await json<{ ok: boolean; days: { day: { label: string }; status: string }[] }>(
      '--config',
      file,
      'run',
      'daily',
      '--date',
      '2026-11-27',
    );
    assert.equal(daily.code, daily.value.ok ? 0 : 1);
    assert.equal(daily.value.days[0]!.day.label, '2026-331');
    // Copied now, or already by the triggered scheduled run when today is that date.
    assert.match(daily.value.days[0]!.status, /^(copied|complete)$/);
    const backfill = await json<{ ok: boolean }[]>(
      '--config',
      file,
      'backfill',
      'daily',
      '--from',
      '2026-11-26',
      '--to',
      '2026-11-27',
    );
    assert.equal(backfill.value.length, 2);
    assert.equal(backfill.code, backfill.value.every((r) => r.ok) ? 0 : 1);
  });

  it('shows status as a table and as JSON', async () => {
    const status = await json<{
      jobs: { job: string; last?: { status: string } }[];
      heldDown: unknown[];
      restoreTests: unknown;
    }>('--config', file, 'status');
    assert.equal(status.code, 0);
    assert.deepEqual(
      status.value.jobs.map((s) => s.job),
      ['daily', 'weekly', 'watchdog'],
    );
    assert.equal(status.value.jobs[0]!.last?.status, 'COMPLETED');
    assert.deepEqual(status.value.heldDown, [], 'no hypervisor configured: nothing held down');
    const text = (await cli('--config', file, 'status')).stdout.trimEnd().split('\n');
    const [header, daily] = text;
    assert.ok(text.includes('VMs held down now: none'), text.join('\n'));
    assert.equal(text.at(-1), 'restore test: none yet', 'the last boot test of each VM (none in this store)');
    assert.deepEqual(status.value.restoreTests, {});
    assert.match(header!, /^JOB +LAST RUN +STATUS +RESULT +FINISHED +RUNNING NOW$/);
    assert.match(daily!, /^daily +supim-\S+ +COMPLETED +/);
  });

  it('registers search attributes and reads the store with --json', async () => {
    const registered = await json<{ name: string; change: string }[]>(
      '--config',
      file,
      'search-attributes',
      'register',
    );
    assert.deepEqual(
      registered.value.map((r) => [r.name, r.change]),
      ['BackupJob', 'BackupPeriod', 'BackupResult', 'BackupHypervisor'].map((name) => [name, 'already registered']),
    );
    const verify = await json<{ ok: boolean; checks: unknown[] }>('--config', file, 'store', 'verify');
    assert.deepEqual([verify.code, verify.value], [0, { ok: true, checks: [] }]);
    const retention = await json<unknown[]>('--config', file, 'store', 'retention');
    assert.deepEqual([retention.code, retention.value], [0, []]);
  });

  it('exits 3 when Temporal cannot be reached, and says where it tried', async () => {
    const address = `127.0.0.1:${await freePort()}`;
    const dir = join(box.root, 'unreachable');
    mkdirSync(dir);
    const unreachable = writeConfigFile(dir, { ...config, temporal: { ...config.temporal, address } });
    const { code, stderr } = await cli('--config', unreachable, 'status', '--json');
    assert.equal(code, 3);
    assert.match(stderr, new RegExp(`cannot reach Temporal at ${address}`));
    const worker = await cli('--config', unreachable, 'worker');
    assert.equal(worker.code, 3, worker.stderr);
    assert.match(worker.stderr, new RegExp(`cannot reach Temporal at ${address}`));
  });
});
