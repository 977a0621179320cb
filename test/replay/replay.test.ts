/**
 * Safe deploys: every committed history (test/replay/*.json, captured from real runs of the test suite) must
 * replay on the workflow code being shipped. A change that would wedge a run open during a deploy fails here.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Worker } from '@temporalio/worker';
import { PROJECT_ROOT } from '../../scripts/sandbox/paths';
import { WORKFLOW_BUNDLE } from '../../worker/create-worker';
import { REPLAY_DIR } from '../helpers/history-capture';
import { quietWorkerLogs } from '../helpers/temporal';

/** The workflows the worker registers: the names workflows/index.ts exports. */
function exportedWorkflows(source: string): string[] {
  const names: string[] = [];
  for (const [, list] of source.matchAll(/export\s*\{([^}]*)\}/g))
    for (const item of list!.split(',')) {
      const name = item
        .trim()
        .split(/\s+as\s+/)
        .pop();
      if (name) names.push(name);
    }
  for (const [, name] of source.matchAll(/export\s+(?:async\s+)?function\s*\*?\s*(\w+)/g)) names.push(name!);
  return names;
}

/** The workflow type a committed history is of (its first event). */
function workflowType(history: unknown): string | undefined {
  const first = (
    history as { events?: { workflowExecutionStartedEventAttributes?: { workflowType?: { name?: string } } }[] }
  ).events?.[0];
  return first?.workflowExecutionStartedEventAttributes?.workflowType?.name;
}

describe('replay of committed workflow histories', () => {
  const files = readdirSync(REPLAY_DIR)
    .filter((f) => f.endsWith('.json'))
    .sort();
  const read = (file: string) => JSON.parse(readFileSync(join(REPLAY_DIR, file), 'utf8')) as unknown;

  it('reads the workflow names from workflows/index.ts', () => {
    assert.deepEqual(
      exportedWorkflows("export { a } from './a';\nexport { b as c, d } from './b';\nexport async function e() {}"),
      ['a', 'c', 'd', 'e'],
    );
  });

  it('has a history of every workflow workflows/index.ts exports', () => {
    const workflows = exportedWorkflows(readFileSync(join(PROJECT_ROOT, 'workflows', 'index.ts'), 'utf8'));
    assert.ok(workflows.includes('weeklyVmBackup') && workflows.includes('restoreVm'), workflows.join(', '));
    const covered = new Set(files.map((f) => workflowType(read(f))));
    assert.deepEqual(
      workflows.filter((w) => !covered.has(w)),
      [],
      'workflows without a history in test/replay',
    );
  });

  it('has histories of every job and way out to replay', () => {
    for (const kind of [
      'daily-ok',
      'daily-failed-day',
      'weekly-ok',
      'weekly-failed-step',
      'weekly-aborted',
      'weekly-cancelled',
      'weekly-overlay-ok',
      'weekly-overlay-merge-failed',
      'weekly-overlay-aborted',
      'guardian',
      'guardian-every-hypervisor',
      'weekly-hosts-lock',
      'restore-vm-as',
      'restore-vm-replace',
      'restore-vm-put-back',
      'restore-vm-aborted',
      'restore-day-ok',
      'restore-day-refused',
      'restore-test-passed',
      'watchdog',
    ]) {
      assert.ok(
        files.some((f) => f.startsWith(kind)),
        `test/replay has no ${kind} history`,
      );
    }
  });

  it('holds no machine paths, in its text or its payloads (they are replaced when captured)', () => {
    const texts = (value: unknown, key?: string): string[] => {
      if (typeof value === 'string')
        return key === 'data' ? [value, Buffer.from(value, 'base64').toString('utf8')] : [value];
      if (value === null || typeof value !== 'object') return [];
      return Object.entries(value).flatMap(([k, inner]) => texts(inner, Array.isArray(value) ? undefined : k));
    };
    for (const file of files) {
      const found = texts(read(file)).filter((t) => /(^|[^\w@.-])\/(work|tmp|home|root|Users)\//.test(t));
      assert.deepEqual(found, [], file);
    }
  });

  it('replays each of them on the current workflow code without a determinism error', async () => {
    quietWorkerLogs();
    const histories = files.map((file) => ({
      workflowId: file.replace(/\.json$/, ''),
      history: read(file),
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
