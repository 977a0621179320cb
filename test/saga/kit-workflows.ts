/**
 * Workflows that exercise the saga kit alone (no activities), bundled for test/saga/saga-kit.test.ts only:
 * the kit needs a workflow context (cancellation scopes, timers).
 */
import { CancellationScope, isCancellation, sleep } from '@temporalio/workflow';
import type { CompensationRun } from '../../domain/weekly-summary';
import { Compensations } from '../../workflows/saga/compensations';
import { Stepper, type StepProgress } from '../../workflows/saga/stepper';

export interface KitOutcome {
  runs: CompensationRun[];
  /** The order the undo steps actually ran in. */
  order: string[];
  pendingBefore: Record<string, boolean>;
  restart?: CompensationRun;
  leftAfter: boolean;
}

/** unlock, discard (fails for good), merge (dropped once confirmed), put-back, restart: then unwind. */
export async function unwindStack(): Promise<KitOutcome> {
  const undo = new Compensations();
  const order: string[] = [];
  undo.push('unlock', 'release the lock', async () => void order.push('unlock'));
  undo.push('discard', 'remove partials', async () => {
    order.push('discard');
    throw new Error('EIO while removing');
  });
  const merged = undo.push('merge', 'merge the overlays back', async () => void order.push('merge'));
  undo.push('put-back', 'put the originals back', async () => void order.push('put-back'));
  undo.push('restart', 'start the VM again', async () => void order.push('restart'));
  undo.onExit('read the state', async () => void order.push('state'));
  merged.drop(); // confirmed: nothing to undo
  const pendingBefore = {
    restart: undo.pending('restart'),
    merge: undo.pending('merge'),
    unlock: undo.pending('unlock'),
  };
  const runs = await undo.unwind();
  return { runs, order, pendingBefore, restart: undo.ran('restart'), leftAfter: undo.pending('unlock') };
}

/** The run is cancelled in its work; the unwind's undo steps still sleep and run to the end. */
export async function unwindAfterCancel(): Promise<KitOutcome> {
  const undo = new Compensations();
  const order: string[] = [];
  undo.push('restart', 'start the VM again', async () => {
    await sleep(1000);
    order.push('restart');
  });
  undo.push('discard', 'remove partials', async () => {
    await sleep(1000);
    order.push('discard');
  });
  try {
    await sleep('1 day');
  } catch (err) {
    if (!isCancellation(err)) throw err;
    order.push('cancelled');
  }
  const runs = await undo.unwind();
  return { runs, order, pendingBefore: {}, leftAfter: undo.pending('restart') };
}

/** Two steps, the second failing: both timed, the current step named. */
export async function steps(): Promise<{ progress: StepProgress<string>; failedAt: string }> {
  const progress: StepProgress<string> = { step: 'pending', steps: [] };
  const step = new Stepper<string>(progress, { withStartedAt: true, changed: () => undefined });
  await step.run('locking', () => sleep(2000));
  let failedAt = '';
  try {
    await step.run('imaging', () => CancellationScope.nonCancellable(() => Promise.reject(new Error('no space'))));
  } catch {
    failedAt = step.current;
  }
  step.finish('done');
  return { progress, failedAt };
}
