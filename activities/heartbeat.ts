import { setMaxListeners } from 'node:events';
import { Context } from '@temporalio/activity';

/** How long a stalled step is given to stop (its signal aborted) before the activity fails anyway. */
const STOP_GRACE_SECONDS = 30;

/**
 * Local-only steps in flight (flushing the store, renaming, removing staging): they wait on this machine's
 * disks, not on a host, so a stall watch does not count the time they take.
 */
export class LocalSteps {
  private running = 0;

  get busy(): boolean {
    return this.running > 0;
  }

  async run<T>(step: () => Promise<T>): Promise<T> {
    this.running += 1;
    try {
      return await step();
    } finally {
      this.running -= 1;
    }
  }
}

/** Ends a step that stops moving: `progress` changes whenever it moves (bytes in, files done). */
export interface StallWatch {
  seconds: number;
  progress: () => unknown;
  /** What the step is failed with when `progress` stood still for `seconds`. */
  stalled: () => Error;
  /** While one of these runs, the watch waits: nothing is expected from the host. */
  local?: LocalSteps;
  /** How long the stopped step may take to unwind before the activity fails anyway (default 30 s). */
  graceSeconds?: number;
}

/** Waits for `work` to settle, at most `seconds`; whether it did. */
async function settledWithin(work: Promise<unknown>, seconds: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), seconds * 1000)));
  const done = work.then(
    () => true,
    () => true,
  );
  try {
    return await Promise.race([done, late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Heartbeats `details()` every second for as long as `work` runs: a long silent step (a remote checksum,
 * a big listing) does not look like a dead worker, a dead worker shows within the heartbeat timeout, and
 * progress (the resume point) is reported without a heartbeat call per chunk on the hot path.
 * The SDK forwards at most one heartbeat per 0.8 x heartbeat timeout to the server.
 * With `stall`, a step whose progress stands still that long (local-only steps aside) is ended: its signal
 * aborts, it is given a bounded grace to unwind (so the caller's cleanup, like letting go of a lock, does
 * not run under work still writing), and it fails with the stall's error, without waiting on the host that
 * went silent: heartbeats alone never end a hung step.
 */
export async function whileHeartbeating<T>(
  details: () => unknown,
  work: (signal: AbortSignal) => Promise<T>,
  stall?: StallWatch,
): Promise<T> {
  const ctx = Context.current();
  const stop = new AbortController();
  const signal = AbortSignal.any([ctx.cancellationSignal, stop.signal]);
  setMaxListeners(0, signal); // every file in flight listens for cancellation
  let stalled: (err: Error) => void = () => undefined;
  const gaveUp = new Promise<never>((_, reject) => (stalled = reject));
  let last = stall?.progress();
  let lastChange = Date.now();
  ctx.heartbeat(details());
  const timer = setInterval(() => {
    ctx.heartbeat(details());
    if (!stall) return;
    const now = stall.progress();
    if (now !== last || stall.local?.busy) [last, lastChange] = [now, Date.now()];
    else if (Date.now() - lastChange >= stall.seconds * 1000 && !stop.signal.aborted) {
      const err = stall.stalled();
      stop.abort(err);
      stalled(err);
    }
  }, 1000);
  const running = work(signal);
  try {
    return await Promise.race([running, gaveUp]);
  } catch (err) {
    // A step ended by its cancellation reports the cancellation, not the broken channel it left behind:
    // the workflow tells an abort or a budget that ran out from a failure by that.
    if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason ?? err;
    if (stop.signal.aborted) {
      const grace = stall?.graceSeconds ?? STOP_GRACE_SECONDS;
      if (!(await settledWithin(running, grace)))
        ctx.log.warn(`a stalled step did not stop within ${grace} s of being told to; failing it anyway`);
      throw stop.signal.reason;
    }
    throw err;
  } finally {
    clearInterval(timer);
  }
}
