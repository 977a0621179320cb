/**
 * The watchdog's off-site look on the time-skipping test server with stub activities: a repository whose
 * newest copy is older than allowed (or that cannot be read) is alerted on; fresh ones, or none configured,
 * send nothing. The freshness itself is pure (domain/offsite) and tested here too.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { offsiteFreshness, offsiteStaleLines, offsiteStatusLines, type OffsiteFreshness } from '../../domain/offsite';
import { TEMPORAL_TEST_SERVER } from '../../scripts/sandbox/paths';
import { quietWorkerLogs, stubActivityWorkers } from '../helpers/temporal';

const TASK_QUEUE = 'watchdog-offsite';
const STORE_QUEUE = 'watchdog-offsite-store';

describe('watchdog: off-site copies that stopped arriving (time-skipping test server)', () => {
  let env: TestWorkflowEnvironment;
  let workers: { stop: () => Promise<void> };
  let repositories: string[] = [];
  let freshness: OffsiteFreshness[] = [];
  const calls: string[] = [];
  const alerts: OffsiteFreshness[][] = [];
  let seq = 0;

  before(async () => {
    quietWorkerLogs();
    env = await TestWorkflowEnvironment.createTimeSkipping({
      server: { executable: { type: 'existing-path', path: TEMPORAL_TEST_SERVER } },
    });
    const remote = {
      lastSuccess: async (job: 'daily' | 'weekly') => ({ job, workflowType: 'x', maxAgeHours: 26, stale: false }),
      dailyDataDrought: async () => ({ runsWithoutData: 0, limit: 3, runDates: [], problem: false }),
      getOffsiteSettings: async () => ({ repositories, storeTaskQueue: STORE_QUEUE, heartbeatTimeoutSeconds: 10 }),
      sendOffsiteAlert: async (stale: OffsiteFreshness[]) => {
        alerts.push(stale);
        return { to: 'outbox', path: '/dev/null', subject: 'stub' };
      },
    };
    const store = {
      checkOffsiteFreshness: async () => {
        calls.push('checkOffsiteFreshness');
        return freshness;
      },
    };
    workers = await stubActivityWorkers(env, { taskQueue: TASK_QUEUE, storeTaskQueue: STORE_QUEUE }, remote, store);
  });
  after(async () => {
    await workers?.stop();
    await env?.teardown();
  });

  const watchdog = async () => {
    calls.length = 0;
    alerts.length = 0;
    await env.client.workflow.execute('backupWatchdog', {
      taskQueue: TASK_QUEUE,
      workflowId: `watchdog-offsite-${++seq}`,
      args: [{ jobs: ['daily'] }],
    });
  };

  it('alerts on the stale repositories only', async () => {
    repositories = ['far', 'near'];
    freshness = [
      { repository: 'far', newest: '2026-11-20T00:00:00.000Z', ageHours: 200, maxAgeHours: 192, stale: true },
      { repository: 'near', newest: '2026-11-28T00:00:00.000Z', ageHours: 3, maxAgeHours: 192, stale: false },
    ];
    await watchdog();
    assert.deepEqual(calls, ['checkOffsiteFreshness']);
    assert.deepEqual(
      alerts.map((a) => a.map((f) => f.repository)),
      [['far']],
    );
  });

  it('is quiet when every copy is fresh, and looks nowhere when none is configured', async () => {
    freshness = [{ repository: 'far', ageHours: 1, maxAgeHours: 192, stale: false }];
    await watchdog();
    assert.deepEqual([calls.length, alerts.length], [1, 0]);
    repositories = [];
    await watchdog();
    assert.deepEqual([calls.length, alerts.length], [0, 0]);
  });

  it('freshness: the newest snapshot against the allowed age; none at all is stale', () => {
    const now = new Date('2026-12-08T00:00:00Z');
    const fresh = offsiteFreshness('far', ['2026-12-01T00:00:00Z', '2026-12-07T12:00:00Z'], 24, now);
    assert.deepEqual([fresh.newest, fresh.ageHours, fresh.stale], ['2026-12-07T12:00:00.000Z', 12, false]);
    const late = offsiteFreshness('far', ['2026-12-06T23:00:00Z'], 24, now);
    assert.equal(late.stale, true);
    const none = offsiteFreshness('far', [], 24, now);
    assert.deepEqual([none.stale, none.reason], [true, 'no snapshot there yet']);
    assert.deepEqual(offsiteStaleLines([late, none]), [
      'off-site far: newest copy 2026-12-06T23:00:00.000Z (25.0 h ago, allowed 24 h)',
      'off-site far: no snapshot there yet (allowed 24 h)',
    ]);
    assert.deepEqual(offsiteStatusLines([fresh, late, none]), [
      'off-site far: newest copy 2026-12-07 12:00 UTC, 12.0 h ago',
      'off-site far: newest copy 2026-12-06 23:00 UTC, 25.0 h ago - LATE (allowed 24 h)',
      'off-site far: no snapshot there yet - LATE',
    ]);
  });
});
