/**
 * Safe deploys: every committed history (test/replay/*.json, captured from real runs of the test suite) must
 * replay on the workflow code being shipped. A change that would wedge a run open during a deploy fails here.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Worker } from '@temporalio/worker';
import { WORKFLOW_BUNDLE } from '../../worker/create-worker';
import { REPLAY_DIR } from '../helpers/history-capture';
import { quietWorkerLogs } from '../helpers/temporal';

describe('replay of committed workflow histories', () => {
  const files = readdirSync(REPLAY_DIR)
    .filter((f) => f.endsWith('.json'))
    .sort();

  it('has histories of every job and way out to replay', () => {
    for (const kind of [
      'daily-ok',
      'daily-failed-day',
      'weekly-ok',
      'weekly-failed-step',
      'weekly-aborted',
      'weekly-cancelled',
      'guardian',
    ]) {
      assert.ok(
        files.some((f) => f.startsWith(kind)),
        `test/replay has no ${kind} history`,
      );
    }
  });

  it('replays each of them on the current workflow code without a determinism error', async () => {
    quietWorkerLogs();
    const histories = files.map((file) => ({
      workflowId: file.replace(/\.json$/, ''),
      history: JSON.parse(readFileSync(join(REPLAY_DIR, file), 'utf8')) as unknown,
    }));
    const failures: string[] = [];
    for await (const result of Worker.runReplayHistories(
      { workflowBundle: { codePath: WORKFLOW_BUNDLE } },
      histories,
    )) {
      if (result.error) failures.push(`${result.workflowId}: ${result.error.message}`);
    }
    assert.deepEqual(failures, []);
    assert.equal(histories.length, files.length);
  });
});
