import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { simpleParser } from 'mailparser';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import type { Client } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { workflowMetadataQuery } from '@temporalio/workflow';
import { parseConfig } from '../../config/load';
import type { Config } from '../../config/schema';
import { calendarDay } from '../../domain/julian-day';
import { BACKUP_JOB, BACKUP_RESULT } from '../../domain/search-attributes';
import type { dailySupimBackup } from '../../workflows';
import { backfillDaily, datesBetween } from '../../scripts/commands/backfill';
import { applySchedules, scheduleId } from '../../scripts/commands/schedules';
import { specInWords } from '../../scripts/commands/schedules-list';
import { formatStatus, jobStatuses } from '../../scripts/commands/status';
import { connectClient } from '../../scripts/commands/temporal-client';
import { freePort, stopProcess } from '../../scripts/sandbox/processes';
import { writeSupimDay } from '../../scripts/sandbox/supim-data';
import { PROJECT_ROOT, TEMPORAL_CLI } from '../../scripts/sandbox/paths';
import type { DevServer } from '../../scripts/sandbox/temporal-dev-server';
import { supimSandbox, type SupimSandbox } from '../helpers/sandbox';
import { inProcessWorker, quietWorkerLogs, testDevServer } from '../helpers/temporal';
import { eventually } from '../helpers/eventually';
import { spawnWorker, writeConfigFile } from '../helpers/worker-process';

quietWorkerLogs();
const run = promisify(execFile);

describe('operations: schedules, triggers, backfill, documented CLI, metrics', { concurrency: false }, () => {
  let server: DevServer;
  let box: SupimSandbox;
  let config: Config;
  let worker: { stop: () => Promise<void> };
  let client: Client;
  let closeClient: () => Promise<void>;

  before(async () => {
    [server, box] = await Promise.all([testDevServer(), supimSandbox()]);
    config = {
      ...box.config,
      temporal: { address: server.address, namespace: 'default', taskQueue: 'cluster-backup' },
    };
    worker = await inProcessWorker(config);
    ({ client, close: closeClient } = await connectClient(config));
  });
  after(async () => {
    await closeClient();
    await worker?.stop();
    await Promise.all([server.stop(), box.cleanup()]);
  });

  it('applies schedules idempotently, and updates a changed time in place', async () => {
    const changes = async (c: Config) => (await applySchedules(client, c)).map((r) => `${r.scheduleId}: ${r.change}`);
    assert.deepEqual(await changes(config), ['cluster-backup-daily: created', 'cluster-backup-watchdog: created']);
    assert.deepEqual(await changes(config), ['cluster-backup-daily: unchanged', 'cluster-backup-watchdog: unchanged']);
    const described = await client.schedule.getHandle(scheduleId('daily')).describe();
    assert.equal(described.spec.timezone, 'America/Sao_Paulo');
    assert.equal(described.spec.calendars?.[0]?.hour?.[0]?.start, 3);
    assert.equal(described.policies.overlap, 'SKIP');
    assert.equal(described.policies.catchupWindow, 12 * 3_600_000);

    const later = { ...config, schedules: { ...config.schedules, daily: { ...config.schedules.daily, at: '04:30' } } };
    assert.deepEqual(await changes(later), ['cluster-backup-daily: updated', 'cluster-backup-watchdog: unchanged']);
    const updated = await client.schedule.getHandle(scheduleId('daily')).describe();
    assert.equal(updated.spec.calendars?.[0]?.hour?.[0]?.start, 4);
    assert.equal(updated.spec.calendars?.[0]?.minute?.[0]?.start, 30);
    assert.deepEqual(await changes(later), ['cluster-backup-daily: unchanged', 'cluster-backup-watchdog: unchanged']);

    // With a hypervisor configured, the weekly job gets its schedule too: Sunday 02:00 by default.
    const withVms: Config = {
      ...later,
      hypervisors: parseConfig(
        { ...box.config, hypervisors: undefined, hypervisor: { host: 'compute', imageArea: '/img' } },
        't',
        box.root,
      ).hypervisors,
    };
    assert.deepEqual(await changes(withVms), [
      'cluster-backup-daily: unchanged',
      'cluster-backup-weekly: created',
      'cluster-backup-watchdog: updated', // it now watches the weekly job too
      'cluster-backup-guardian: created', // and VMs left down are put back every few minutes
    ]);
    assert.deepEqual(await changes(withVms), [
      'cluster-backup-daily: unchanged',
      'cluster-backup-weekly: unchanged',
      'cluster-backup-watchdog: unchanged',
      'cluster-backup-guardian: unchanged',
    ]);
    const weekly = await client.schedule.getHandle(scheduleId('weekly')).describe();
    assert.equal(weekly.spec.calendars?.[0]?.dayOfWeek?.[0]?.start, 'SUNDAY');
    assert.equal(weekly.spec.calendars?.[0]?.hour?.[0]?.start, 2);
    assert.equal(specInWords(weekly.spec), 'Sundays at 02:00');
    assert.equal(specInWords(described.spec), 'daily at 03:00');
    // Back to a config without a hypervisor: its schedules go by hand (apply never deletes one).
    await client.schedule.getHandle(scheduleId('weekly')).delete();
    await client.schedule.getHandle(scheduleId('guardian')).delete();
    await applySchedules(client, later);

    const schedules: string[] = [];
    for await (const s of client.schedule.list()) schedules.push(s.scheduleId);
    assert.deepEqual(schedules.sort(), ['cluster-backup-daily', 'cluster-backup-watchdog']);
  });

  it('starts exactly one run when the schedule is triggered', async () => {
    const handle = client.schedule.getHandle(scheduleId('daily'));
    await handle.trigger();
    const first = await eventually(async () => (await handle.describe()).info.recentActions[0], 'the triggered run');
    assert.match(first.action.workflow.workflowId, /^supim-scheduled-/);
    const summary = await client.workflow.getHandle(first.action.workflow.workflowId).result();
    assert.equal(summary.days.length, 3);
    assert.equal((await handle.describe()).info.recentActions.length, 1);
  });

  it('backfills one run per date across a year boundary, in order', async () => {
    assert.deepEqual(datesBetween('2024-12-30', '2025-01-01'), ['2024-12-30', '2024-12-31', '2025-01-01']);
    // Every run's oldest day is there (a day missing at the end of its window fails the run).
    for (const date of ['2025-12-29', '2025-12-30', '2025-12-31'])
      writeSupimDay(box.sourceTemplate, calendarDay(date), { bytesPerFile: 100 });
    const seen: string[] = [];
    const runs = await backfillDaily(client, config, '2025-12-31', '2026-01-01', (date) => seen.push(date));
    assert.deepEqual(seen, ['2025-12-31', '2026-01-01']);
    assert.deepEqual(
      runs.map((r) => r.days[0]!.day.label),
      ['2025-365', '2026-001'],
    );
    for (const id of ['supim-2025-365', 'supim-2026-001']) {
      assert.equal((await client.workflow.getHandle(id).describe()).status.name, 'COMPLETED');
    }
    assert.equal(runs[0]!.days[0]!.status, 'copied');
  });

  it('tags runs with search attributes, summarizes each activity and shows current details', async () => {
    const handle = client.workflow.getHandle<typeof dailySupimBackup>('supim-2025-365');
    const listed = await eventually(async () => {
      const ids: string[] = [];
      for await (const w of client.workflow.list({ query: 'BackupJob = "daily" AND BackupPeriod = "2025-365"' })) {
        ids.push(w.workflowId);
      }
      return ids.length > 0 ? ids : undefined;
    }, 'the run in a search-attribute query');
    assert.deepEqual(listed, ['supim-2025-365']);
    const summary = await handle.result();
    const attributes = (await handle.describe()).typedSearchAttributes;
    assert.equal(attributes.get(BACKUP_JOB), 'daily');
    assert.equal(attributes.get(BACKUP_RESULT), summary.ok ? 'ok' : 'incomplete');

    const scheduled = (await handle.fetchHistory()).events
      ?.map((e) => ({ attributes: e.activityTaskScheduledEventAttributes, summary: e.userMetadata?.summary }))
      .filter((e) => e.attributes?.activityType?.name === 'backupSupimDay');
    assert.deepEqual(
      scheduled?.map((e) => (e.summary ? defaultPayloadConverter.fromPayload(e.summary) : undefined)),
      // Today first: the freshest data is the one not backed up anywhere yet.
      ['SUPIM day 2025-365 (2025-12-31)', 'SUPIM day 2025-364 (2025-12-30)', 'SUPIM day 2025-363 (2025-12-29)'],
    );
    // Day copies write to the backup store's disk: they go to the store task queue.
    assert.deepEqual(new Set(scheduled?.map((e) => e.attributes?.taskQueue?.name)), new Set(['cluster-backup-store']));
    const metadata = await handle.query(workflowMetadataQuery);
    assert.match(metadata.currentDetails ?? '', /^done: 2025-365 copied, 2025-364 \S+, 2025-363 \S+$/);
  });

  it('has a dead-man`s switch that stays quiet for a fresh job and alerts for a stale one', async () => {
    const outbox = config.mail.outbox!;
    const before = existsSync(outbox) ? readdirSync(outbox).length : 0;
    const checks = await client.workflow.execute('backupWatchdog', {
      taskQueue: config.temporal.taskQueue,
      workflowId: 'watchdog-test',
      args: [{ jobs: ['daily', 'weekly'] }],
    });
    const [daily, weekly] = checks as { job: string; stale: boolean; at?: string }[];
    assert.equal(daily!.stale, false, 'the backfill and trigger runs just succeeded');
    assert.equal(weekly!.stale, true, 'no weekly run ever succeeded');
    const alerts = readdirSync(outbox)
      .slice(before)
      .filter((f) => f.includes('watchdog'));
    assert.equal(alerts.length, 1);
    const mail = await simpleParser(readFileSync(join(outbox, alerts[0]!)));
    assert.equal(mail.subject, '[cluster-backup] ALERT no successful weekly backup on record');
  });

  it('runs the temporal CLI commands the README documents', async () => {
    const readme = readFileSync(join(PROJECT_ROOT, 'README.md'), 'utf8');
    const block = /<!-- cli-doc-test:start -->\s*```sh\n([\s\S]*?)```/.exec(readme)?.[1] ?? '';
    const commands = block.split('\n').filter((l) => l.startsWith('temporal '));
    assert.ok(commands.length >= 5, 'the README documents the commands');
    for (const command of commands) {
      const { stdout } = await run('bash', ['-c', `"$TEMPORAL_CLI" ${command.slice('temporal '.length)}`], {
        env: { ...process.env, TEMPORAL_CLI, TEMPORAL_ADDRESS: server.address, TEMPORAL_NAMESPACE: 'default' },
      });
      if (command.includes('workflow result')) assert.match(stdout, /2026-11-27/, command);
      if (command.includes('BackupPeriod="2026-331"')) assert.match(stdout, /supim-2026-331/, command);
    }
  });

  it('shows the last run of each job in `status`, as a table and as data', async () => {
    const statuses = await jobStatuses(client);
    const daily = statuses.find((s) => s.job === 'daily');
    assert.match(daily?.last?.workflowId ?? '', /^supim-/);
    assert.equal(daily?.last?.status, 'COMPLETED');
    assert.equal(statuses.find((s) => s.job === 'weekly')?.last, undefined);
    const [header, ...rows] = formatStatus(statuses);
    assert.match(header!, /^JOB +LAST RUN +STATUS +RESULT +FINISHED +RUNNING NOW$/);
    assert.match(
      rows.find((l) => l.startsWith('daily ')) ?? '',
      /^daily +supim-\S+ +COMPLETED +\S+ +\d{4}-\d\d-\d\d \d\d:\d\d UTC +(-|supim-\S+)$/,
    );
    assert.match(rows.find((l) => l.startsWith('weekly ')) ?? '', /^weekly +none +- +- +- +-$/);
  });

  it('serves Prometheus metrics from the worker when configured', async () => {
    const port = await freePort();
    const file = writeConfigFile(box.root, {
      ...config,
      temporal: { ...config.temporal, taskQueue: 'metrics' },
      worker: { storeHost: true, metricsBindAddress: `127.0.0.1:${port}` },
    });
    const child = spawnWorker(file, join(box.root, 'metrics-worker.log'));
    try {
      const body = await eventually(async () => {
        const res = await fetch(`http://127.0.0.1:${port}/metrics`);
        const text = await res.text();
        return res.ok && text.includes('temporal_') ? text : undefined;
      }, 'the metrics endpoint');
      assert.match(body, /temporal_(worker|num_pollers|request)/);
    } finally {
      await stopProcess(child);
    }
  });
});
