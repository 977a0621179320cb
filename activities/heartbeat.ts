import { Context } from '@temporalio/activity';

/**
 * Heartbeats `details()` every second for as long as `work` runs: a long silent step (a remote checksum,
 * a big listing) does not look like a dead worker, a dead worker shows within the heartbeat timeout, and
 * progress (the resume point) is reported without a heartbeat call per chunk on the hot path.
 * The SDK forwards at most one heartbeat per 0.8 x heartbeat timeout to the server.
 */
export async function whileHeartbeating<T>(details: () => unknown, work: () => Promise<T>, everyMs = 1000): Promise<T> {
  const ctx = Context.current();
  ctx.heartbeat(details());
  const timer = setInterval(() => ctx.heartbeat(details()), everyMs);
  try {
    return await work();
  } catch (err) {
    // A step ended by its cancellation reports the cancellation, not the broken channel it left behind:
    // the workflow tells an abort or a budget that ran out from a failure by that.
    if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason ?? err;
    throw err;
  } finally {
    clearInterval(timer);
  }
}
