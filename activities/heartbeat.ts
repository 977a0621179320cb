import { setMaxListeners } from 'node:events';
import { Context } from '@temporalio/activity';

/** Ends a step that stops moving: `progress` changes whenever it moves (bytes in, files done). */
export interface StallWatch {
  seconds: number;
  progress: () => unknown;
  /** What the step is failed with when `progress` stood still for `seconds`. */
  stalled: () => Error;
}

/**
 * Heartbeats `details()` every second for as long as `work` runs: a long silent step (a remote checksum,
 * a big listing) does not look like a dead worker, a dead worker shows within the heartbeat timeout, and
 * progress (the resume point) is reported without a heartbeat call per chunk on the hot path.
 * The SDK forwards at most one heartbeat per 0.8 x heartbeat timeout to the server.
 * With `stall`, a step whose progress stands still that long is ended (its signal aborts) and fails with
 * the stall's error, without waiting on the host that went silent: heartbeats alone never end a hung step.
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
    if (now !== last) [last, lastChange] = [now, Date.now()];
    else if (Date.now() - lastChange >= stall.seconds * 1000 && !stop.signal.aborted) {
      const err = stall.stalled();
      stop.abort(err);
      stalled(err);
    }
  }, 1000);
  try {
    return await Promise.race([work(signal), gaveUp]);
  } catch (err) {
    // A step ended by its cancellation reports the cancellation, not the broken channel it left behind:
    // the workflow tells an abort or a budget that ran out from a failure by that.
    if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason ?? err;
    if (stop.signal.aborted) throw stop.signal.reason;
    throw err;
  } finally {
    clearInterval(timer);
  }
}
