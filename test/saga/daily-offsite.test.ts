/**
 * The daily run's off-site copies on the time-skipping test server with stub activities: the days now in
 * the repository go to every off-site repository after the days are done; one whose server is down is
 * tried a few times and reported behind while the run stays OK; a day that failed is not asked for.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { dailyReport } from '../../domain/daily-report';
import { blankDayResult, type DailySettings, type DailySummary, type DayRestic } from '../../domain/daily-summary';
import type { CalendarDay } from '../../domain/julian-day';
import type { OffsiteOutcome, OffsiteRequest } from '../../domain/offsite';
import type { ReportRequest } from '../../domain/report';
import { TEMPORAL_TEST_SERVER } from '../../scripts/sandbox/paths';
import { quietWorkerLogs, stubActivityWorkers } from '../helpers/temporal';

const TASK_QUEUE = 'daily-offsite';
const STORE_QUEUE = 'daily-offsite-store';
const SETTINGS: DailySettings = {
  timeZone: 'UTC',
  daysBack: 2,
  sourceTemplate: '/data/{yyyy}/{ddd}',
  destinationRoot: '/backup',
  verify: 'size',
  heartbeatTimeoutSeconds: 10,
  resticDays: true,
  storeTaskQueue: STORE_QUEUE,
};

describe('daily run: off-site copies of its days (time-skipping test server)', () => {
  let env: TestWorkflowEnvironment;
  let workers: { stop: () => Promise<void> };
  let repositories: string[] = [];
  let resticOf: (day: CalendarDay) => DayRestic = () => ({ status: 'stored', snapshot: '0123abcd' });
  let copy: (name: string, request: OffsiteRequest, attempt: number) => Promise<OffsiteOutcome>;
  const calls: string[] = [];
  const reports: ReportRequest[] = [];
  let seq = 0;

  before(async () => {
    quietWorkerLogs();
    env = await TestWorkflowEnvironment.createTimeSkipping({
      server: { executable: { type: 'existing-path', path: TEMPORAL_TEST_SERVER } },
    });
    const remote = {
      getDailySettings: async () => SETTINGS,
      registeredSearchAttributes: async () => [],
      getOffsiteSettings: async () => ({ repositories, storeTaskQueue: STORE_QUEUE, heartbeatTimeoutSeconds: 10 }),
      sendReport: async (request: ReportRequest) => {
        reports.push(request);
        return { to: 'outbox', path: '/dev/null', subject: 'stub' };
      },
    };
    const store = {
      backupSupimDay: async (day: CalendarDay) => ({ ...blankDayResult(day, SETTINGS, 'copied'), filesCopied: 1 }),
      storeSupimDayInRestic: async (day: CalendarDay) => resticOf(day),
      copyToOffsite: async (name: string, request: OffsiteRequest) => {
        const attempt = Context.current().info.attempt;
        calls.push(`${name} #${attempt}: ${request.tagGroups.map((g) => g.join('+')).join(' ')}`);
        return copy(name, request, attempt);
      },
    };
    workers = await stubActivityWorkers(env, { taskQueue: TASK_QUEUE, storeTaskQueue: STORE_QUEUE }, remote, store);
  });
  after(async () => {
    await workers?.stop();
    await env?.teardown();
  });

  async function daily(): Promise<DailySummary> {
    calls.length = 0;
    reports.length = 0;
    return (await env.client.workflow.execute('dailySupimBackup', {
      taskQueue: TASK_QUEUE,
      workflowId: `daily-offsite-${++seq}`,
      args: [{ date: '2026-06-15' }],
    })) as DailySummary;
  }

  it('copies the days to every off-site repository; one behind is tried 3 times and reported, the run stays OK', async () => {
    repositories = ['far', 'near'];
    copy = async (name, request) => {
      if (name === 'near')
        throw ApplicationFailure.retryable(
          'restic copy exited with code 1: dial tcp 127.0.0.27:1: connect: connection refused',
          'ResticUnreachableError',
        );
      return { repository: name, status: 'copied', saved: request.tagGroups.length, skipped: 0 };
    };
    const summary = await daily();
    assert.equal(summary.ok, true);
    assert.deepEqual(
      calls.filter((c) => c.startsWith('far')),
      ['far #1: day=2026-166 day=2026-165 day=2026-164'],
    );
    assert.deepEqual(
      calls.filter((c) => c.startsWith('near')).map((c) => c.split(':')[0]),
      ['near #1', 'near #2', 'near #3'],
    );
    assert.deepEqual(
      summary.offsite?.map((o) => [o.repository, o.status, o.saved]),
      [
        ['far', 'copied', 3],
        ['near', 'behind', 0],
      ],
    );
    const reported = reports.find((r) => r.job === 'daily');
    assert.ok(reported?.outcome.state === 'completed');
    const report = dailyReport(
      reported.outcome as { state: 'completed'; summary: DailySummary },
      { namespace: 'default', workflowId: 'd', runId: 'r' },
      '2026-166',
    );
    assert.match(report.subject, /OK daily 2026-166 \(3\/3 days\); off-site near BEHIND$/);
    assert.match(report.text, /off-site near: behind; .*connection refused/);
  });

  it('asks only for the days in the repository; a damaged copy is reported; no repository, no call', async () => {
    repositories = ['far'];
    resticOf = (day) =>
      day.dayOfYear === 165 ? { status: 'failed', reason: 'locked' } : { status: 'unchanged', snapshot: '0123abcd' };
    copy = async (name) => ({
      repository: name,
      status: 'damaged',
      saved: 0,
      skipped: 2,
      check: { what: 'structure + subset 1/12', ok: false, damagedPacks: ['ab'.repeat(32)], broken: ['2026-166'] },
    });
    const summary = await daily();
    assert.equal(summary.ok, false, 'the failed restic day fails the run, not the off-site copy');
    assert.deepEqual(calls, ['far #1: day=2026-166 day=2026-164']);
    assert.equal(summary.offsite?.[0]?.status, 'damaged');
    const report = dailyReport(
      { state: 'completed', summary },
      { namespace: 'default', workflowId: 'd', runId: 'r' },
      '2026-166',
    );
    assert.match(report.text, /off-site far: damaged; .*DAMAGED packs abababababab/);

    repositories = [];
    resticOf = () => ({ status: 'stored', snapshot: '0123abcd' });
    const none = await daily();
    assert.equal(none.offsite, undefined);
    assert.deepEqual(calls, []);
  });
});
