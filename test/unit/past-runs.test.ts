import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { WorkflowExecutionInfo } from '@temporalio/client';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { runFromHistory } from '../../adapters/temporal/past-runs';
import { leftToAnotherRun, outcomeResult, weeklyTrendPoint } from '../../domain/report-trend';
import { REPLAY_DIR } from '../helpers/history-capture';

/** The histories of real weekly runs the saga suite captured (test/replay), read back as the report does. */
function weeklyRun(name: string, status = 'COMPLETED') {
  const history = historyFromJSON(JSON.parse(readFileSync(join(REPLAY_DIR, `${name}.json`), 'utf8')));
  const closeTime = new Date('2026-11-29T05:41:00Z');
  return runFromHistory('weekly', history, {
    workflowId: name,
    runId: 'r1',
    startTime: new Date('2026-11-29T05:00:00Z'),
    closeTime,
    status: { name: status } as WorkflowExecutionInfo['status'],
  });
}

describe('earlier runs read back from their histories', () => {
  it('takes a weekly run’s outcome from the input of its report: week, result, and per VM status, size, downtime', () => {
    const run = weeklyRun('weekly-ok');
    assert.equal(run.label, '2026-W48');
    assert.equal(outcomeResult(run.outcome), 'ok');
    const [db] = weeklyTrendPoint(run.label!, run.outcome).vms;
    assert.equal(db?.vm, 'db');
    assert.equal(db?.status, 'backed-up');
    assert.ok((db?.imageBytes ?? 0) > 0, 'the image size');
    assert.equal(typeof db?.downtimeMs, 'number');
  });

  it('keeps what failed, cancelled and skipped runs had done, and tells them apart', () => {
    const failed = weeklyRun('weekly-failed-step');
    assert.equal(outcomeResult(failed.outcome), 'incomplete');
    assert.deepEqual(
      failed.outcome.summary?.vms.map((v) => [v.vm, v.status]),
      [['db', 'failed']],
    );
    const cancelled = weeklyRun('weekly-cancelled', 'CANCELLED');
    assert.equal(outcomeResult(cancelled.outcome), 'cancelled');
    assert.equal(cancelled.outcome.summary?.vms[0]?.status, 'aborted', 'the summary so far, from the report');
    const skipped = weeklyRun('weekly-already-running');
    assert.equal(leftToAnotherRun(skipped.outcome), true);
    assert.equal(leftToAnotherRun(failed.outcome), false);
  });
});
