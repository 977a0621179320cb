import { Context } from '@temporalio/activity';
import { dayLockFile } from '../adapters/local/day-lock';
import { takeLock } from '../adapters/run-lock';
import { runIsClosed, type RunsDeps } from './runs';

/**
 * The day's lock for the workflow run of the current activity: one run per day at a time (a lock a closed
 * run left is taken over). The caller releases it with `releaseLock(lock, owner)`.
 */
export async function takeDayLockOfRun(
  destinationRoot: string,
  day: string,
  temporalClient: RunsDeps['temporalClient'],
  now: Date,
) {
  const { workflowId, runId } = Context.current().info.workflowExecution ?? { workflowId: 'none', runId: 'none' };
  const lock = dayLockFile(destinationRoot, day);
  const owner = { workflowId, runId };
  const taken = await takeLock(lock, { day, owner, since: now.toISOString() }, (holder) =>
    runIsClosed(temporalClient, holder),
  );
  return { lock, owner, taken };
}
