/**
 * The saga kit (workflows/saga) in a workflow context on the time-skipping test server: the unwind's order,
 * a failing undo recorded while the others still run, drop() after confirmation, lookups by kind, a cancel
 * that does not reach the unwind; the stepper's timings.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { TEMPORAL_TEST_SERVER } from '../../scripts/sandbox/paths';
import { quietWorkerLogs } from '../helpers/temporal';
import type { KitOutcome, steps } from './kit-workflows';

const TASK_QUEUE = 'saga-kit';

describe('saga kit: compensations and stepper', () => {
  let env: TestWorkflowEnvironment;
  let worker: Worker;
  let running: Promise<void>;
  let seq = 0;

  before(async () => {
    quietWorkerLogs();
    env = await TestWorkflowEnvironment.createTimeSkipping({
      server: { executable: { type: 'existing-path', path: TEMPORAL_TEST_SERVER } },
    });
    worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue: TASK_QUEUE,
      workflowsPath: require.resolve('./kit-workflows'),
    });
    running = worker.run();
  });
  after(async () => {
    worker.shutdown();
    await running;
    await env.teardown();
  });

  const run = <T>(workflow: string) =>
    env.client.workflow.execute(workflow, { taskQueue: TASK_QUEUE, workflowId: `saga-kit-${++seq}` }) as Promise<T>;

  it('unwinds last pushed first; a failing undo is recorded and the ones before it still run', async () => {
    const out = await run<KitOutcome>('unwindStack');
    assert.deepEqual(out.order, ['state', 'restart', 'put-back', 'discard', 'unlock']);
    assert.deepEqual(out.runs, [
      { name: 'start the VM again', ok: true },
      { name: 'put the originals back', ok: true },
      { name: 'remove partials', ok: false, error: 'EIO while removing' },
      { name: 'release the lock', ok: true },
    ]);
  });

  it('drop() after confirmation: the undo never runs; pending and ran go by kind, not by label', async () => {
    const out = await run<KitOutcome>('unwindStack');
    assert.ok(!out.order.includes('merge'), 'a dropped undo does not run');
    assert.deepEqual(out.pendingBefore, { restart: true, merge: false, unlock: true });
    assert.deepEqual(out.restart, { name: 'start the VM again', ok: true });
    assert.equal(out.leftAfter, false, 'the stack is empty after the unwind');
  });

  it('a cancelled run still unwinds to the end: its undo steps wait on timers unhindered', async () => {
    const handle = await env.client.workflow.start('unwindAfterCancel', {
      taskQueue: TASK_QUEUE,
      workflowId: `saga-kit-${++seq}`,
    });
    await handle.cancel();
    const out = (await handle.result()) as KitOutcome;
    assert.deepEqual(out.order, ['cancelled', 'discard', 'restart']);
    assert.ok(
      out.runs.every((r) => r.ok),
      JSON.stringify(out.runs),
    );
    assert.equal(out.leftAfter, false);
  });

  it('the stepper names the current step and times each one, also the one that failed', async () => {
    const out = await run<Awaited<ReturnType<typeof steps>>>('steps');
    assert.equal(out.failedAt, 'imaging');
    assert.equal(out.progress.step, 'done');
    assert.deepEqual(
      out.progress.steps.map((s) => s.step),
      ['locking', 'imaging'],
    );
    assert.ok(out.progress.steps[0]!.ms >= 2000, `locking took ${out.progress.steps[0]!.ms} ms of workflow time`);
    assert.ok(out.progress.steps.every((s) => typeof s.startedAt === 'string'));
  });
});
