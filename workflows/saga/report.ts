import { CancellationScope, log } from '@temporalio/workflow';
import { failureText } from '../failure-text';

/**
 * Sends a run's report from its finally-path: where no cancel reaches it, and never failing the run (an
 * activity failure while reporting is logged with `what`, not thrown).
 */
export async function sendReportSafely(what: string, send: () => Promise<unknown>): Promise<void> {
  try {
    await CancellationScope.nonCancellable(send);
  } catch (err) {
    log.warn(`${what} could not be sent`, { error: failureText(err) });
  }
}
