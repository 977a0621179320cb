/**
 * The boot test's activity limits as the restoreTest workflow sets them, on the time-skipping test server
 * with stub activities: all attempts together end with the test's own time limit and the clean-up.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Context } from '@temporalio/activity';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import type { BootTestOutcome, RestorePlan } from '../../domain/restore-plan';
import type { RestoreTestSummary } from '../../domain/restore';
import { TEMPORAL_TEST_SERVER } from '../../scripts/sandbox/paths';
import { quietWorkerLogs, stubActivityWorkers } from '../helpers/temporal';
import { captureHistory } from '../helpers/history-capture';

const TASK_QUEUE = 'boot-test-timeout';
const STORE_QUEUE = 'boot-test-timeout-store';
const BOOT_TIMEOUT_SECONDS = 30;

describe('restore test: the boot activity`s limits', () => {
  let env: TestWorkflowEnvironment;
  let workers: { stop: () => Promise<void> };
  const seen: { scheduleToCloseMs: number; startToCloseMs: number }[] = [];

  before(async () => {
    quietWorkerLogs();
    env = await TestWorkflowEnvironment.createTimeSkipping({
      server: { executable: { type: 'existing-path', path: TEMPORAL_TEST_SERVER } },
    });
    const plan: RestorePlan = { domain: 'probe', dir: '/t', wasRunning: false, shutdownTimeoutSeconds: 0, targets: [] };
    const remote = {
      getRestoreSettings: async () => ({
        storeTaskQueue: STORE_QUEUE,
        heartbeatTimeoutSeconds: 10,
        bootTimeoutSeconds: BOOT_TIMEOUT_SECONDS,
      }),
      planBootTest: async () => plan,
      bootTest: async (): Promise<BootTestOutcome> => {
        const { scheduleToCloseTimeoutMs, startToCloseTimeoutMs } = Context.current().info;
        seen.push({ scheduleToCloseMs: scheduleToCloseTimeoutMs, startToCloseMs: startToCloseTimeoutMs });
        return { passed: true, detail: 'running, console: web login:', bootSeconds: 1 };
      },
      discardPushed: async () => undefined,
      sendRestoreReport: async () => ({ subject: 'x', where: 'nowhere' }),
    };
    const store = {
      readStoredSet: async () => ({ vm: 'web', stamp: '20261127T000000Z', images: [], domainXml: '<domain/>' }),
      recordRestoreTest: async () => undefined,
    };
    workers = await stubActivityWorkers(env, { taskQueue: TASK_QUEUE, storeTaskQueue: STORE_QUEUE }, remote, store);
  });
  after(async () => {
    await workers.stop();
    await env.teardown();
  });

  it('ends all attempts with the test`s time limit and the clean-up (schedule-to-close), not 3 x that', async () => {
    const handle = await env.client.workflow.start('restoreTest', {
      taskQueue: TASK_QUEUE,
      workflowId: 'boot-test-timeout-1',
      args: [{ vm: 'web' }],
    });
    const summary = (await handle.result()) as RestoreTestSummary;
    await captureHistory(handle, 'restore-test-passed');
    assert.equal(summary.ok, true, JSON.stringify(summary));
    const limit = (BOOT_TIMEOUT_SECONDS + 300) * 1000;
    assert.deepEqual(seen, [{ scheduleToCloseMs: limit, startToCloseMs: limit }]);
  });
});
