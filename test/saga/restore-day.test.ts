/**
 * restoreDay on the time-skipping test server with stub activities: the store activity's result is the
 * run's, a refusal (a folder outside the host's restore roots) ends the run not ok with the reason, and
 * both are reported.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import type { DayRestoreRequest, DayRestoreResult } from '../../domain/restore';
import type { RestoreReportRequest } from '../../domain/restore-report';
import { TEMPORAL_TEST_SERVER } from '../../scripts/sandbox/paths';
import { captureHistory } from '../helpers/history-capture';
import { quietWorkerLogs, stubActivityWorkers } from '../helpers/temporal';

const TASK_QUEUE = 'restore-day';
const STORE_QUEUE = 'restore-day-store';
const ROOT = '/data/supim';

describe('restore day: the workflow around the store activity', () => {
  let env: TestWorkflowEnvironment;
  let workers: { stop: () => Promise<void> };
  const reports: RestoreReportRequest[] = [];
  let seq = 0;

  before(async () => {
    quietWorkerLogs();
    env = await TestWorkflowEnvironment.createTimeSkipping({
      server: { executable: { type: 'existing-path', path: TEMPORAL_TEST_SERVER } },
    });
    const remote = {
      getRestoreSettings: async () => ({
        storeTaskQueue: STORE_QUEUE,
        heartbeatTimeoutSeconds: 10,
        bootTimeoutSeconds: 30,
      }),
      sendRestoreReport: async (request: RestoreReportRequest) => {
        reports.push(request);
        return { subject: 'x', where: 'nowhere' };
      },
    };
    const store = {
      restoreSupimDay: async (request: DayRestoreRequest): Promise<DayRestoreResult> => {
        const to = request.to ?? `${ROOT}/2026/330`;
        if (!to.startsWith(`${ROOT}/`)) {
          throw ApplicationFailure.nonRetryable(
            `refusing to restore to ${to} on compute: outside ${ROOT}`,
            'BadRequest',
          );
        }
        const at = new Date().toISOString();
        return {
          ok: true,
          day: request.day,
          host: request.host ?? 'compute',
          from: 'supim/2026/330',
          to,
          filesInBackup: 2,
          filesRestored: 2,
          bytesRestored: 2048,
          existing: [],
          overwritten: [],
          startedAt: at,
          finishedAt: at,
        };
      },
    };
    workers = await stubActivityWorkers(env, { taskQueue: TASK_QUEUE, storeTaskQueue: STORE_QUEUE }, remote, store);
  });
  after(async () => {
    await workers.stop();
    await env.teardown();
  });

  async function restoreDay(request: DayRestoreRequest, history: string): Promise<DayRestoreResult> {
    const handle = await env.client.workflow.start('restoreDay', {
      taskQueue: TASK_QUEUE,
      workflowId: `restore-day-${++seq}`,
      args: [request],
    });
    const result = (await handle.result()) as DayRestoreResult;
    await captureHistory(handle, history);
    return result;
  }

  it('restores a day: the activity`s result, reported', async () => {
    reports.length = 0;
    const result = await restoreDay({ day: '2026-330' }, 'restore-day-ok');
    assert.equal(result.ok, true, JSON.stringify(result));
    assert.equal(result.filesRestored, 2);
    assert.equal(result.to, `${ROOT}/2026/330`);
    assert.deepEqual(
      reports.map((r) => [r.kind, r.result.ok]),
      [['day', true]],
    );
  });

  it('a refused restore ends not ok with the reason, and is reported', async () => {
    reports.length = 0;
    const result = await restoreDay({ day: '2026-330', to: '/etc' }, 'restore-day-refused');
    assert.equal(result.ok, false);
    assert.match(result.reason ?? '', /refusing to restore to \/etc on compute/);
    assert.equal(result.filesRestored, 0);
    assert.deepEqual(
      reports.map((r) => [r.kind, r.result.ok]),
      [['day', false]],
    );
  });
});
