import { CancellationScope, isCancellation, sleep } from '@temporalio/workflow';

/** Time kept back from the downtime budget for the boot after an abandoned copy. */
export const BOOT_RESERVE_SECONDS = 60;

/** The downtime budget ran out while the VM was down: the copy was abandoned. */
export class OverBudget extends Error {}

/** A VM's time down: when its stop was asked for, whether it went off, and what is left of its budget. */
export class Downtime {
  /** The VM went off (in this run, or an earlier run left it off) and is not confirmed running since. */
  off = false;
  private stopRequestedAt = 0;

  constructor(readonly budgetSeconds: number) {}

  /** The stop was asked for now (or, for a VM an earlier run left off, when that run asked). */
  stopRequested(at = Date.now()): void {
    this.stopRequestedAt = at;
  }

  /** Milliseconds since the stop was asked for. */
  sinceStop(): number {
    return Date.now() - this.stopRequestedAt;
  }

  /** Seconds the copy may still take while the VM is off: the budget left, less the boot's reserve. */
  imagingSeconds(): number {
    return this.budgetSeconds - this.sinceStop() / 1000 - BOOT_RESERVE_SECONDS;
  }

  /** Nothing left for a copy: the VM must be started first. */
  spent(): boolean {
    return this.imagingSeconds() <= 0;
  }
}

/** Runs `work`, cancelling it (and waiting for its remote processes to end) once `seconds` have passed. */
export async function withinBudget(seconds: number, work: () => Promise<void>): Promise<void> {
  if (!Number.isFinite(seconds)) return work();
  if (seconds <= 0) throw new OverBudget();
  const budget = new CancellationScope();
  const timer = new CancellationScope();
  let expired = false;
  timer
    .run(() => sleep(seconds * 1000))
    .then(
      () => {
        expired = true;
        budget.cancel();
      },
      () => undefined,
    );
  try {
    await budget.run(work);
  } catch (err) {
    if (expired && isCancellation(err)) throw new OverBudget();
    throw err;
  } finally {
    timer.cancel();
  }
}
