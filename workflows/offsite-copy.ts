import { isCancellation, setCurrentDetails } from '@temporalio/workflow';
import type { OffsiteOutcome, OffsiteRequest } from '../domain/offsite';
import { remoteActivities, storeActivities } from './activity-proxies';
import { failureText } from './failure-text';

const { getOffsiteSettings } = remoteActivities({
  startToCloseTimeout: '1 minute',
  retry: { maximumAttempts: 5 },
});

/**
 * Copies a run's new snapshots to every configured off-site repository (3-2-1), each its own activity on the
 * store task queue, all at once: `restic copy` with its progress in heartbeats, then `restic check` there
 * (structure, and the next rotating subset of the data). A copy that does not finish (server down, stopped,
 * refused) is the outcome `behind`: the local backup stands, and the next run's copy catches up (restic copy
 * skips what is there). None configured: nothing is called, nothing is reported.
 */
export async function copyOffsite(request: OffsiteRequest): Promise<OffsiteOutcome[]> {
  if (!request.tagGroups.length) return [];
  const settings = await getOffsiteSettings();
  if (!settings.repositories.length) return [];
  const { copyToOffsite } = storeActivities(settings.storeTaskQueue, {
    // A first copy of a large store over a slow link may take a day; liveness comes from heartbeats.
    startToCloseTimeout: '24 hours',
    heartbeatTimeout: `${settings.heartbeatTimeoutSeconds} seconds`,
    // A server down for a while (its own watch stops the copy) gets a few tries, then the run reports it behind.
    retry: { initialInterval: '30 seconds', backoffCoefficient: 2, maximumInterval: '5 minutes', maximumAttempts: 3 },
  });
  setCurrentDetails(`copying ${request.what} off-site to ${settings.repositories.join(', ')}`);
  return Promise.all(
    settings.repositories.map(async (name): Promise<OffsiteOutcome> => {
      try {
        return await copyToOffsite.executeWithOptions({ summary: `off-site ${name}: ${request.what}` }, [
          name,
          request,
        ]);
      } catch (err) {
        if (isCancellation(err)) throw err;
        return { repository: name, status: 'behind', saved: 0, skipped: 0, reason: failureText(err) };
      }
    }),
  );
}
