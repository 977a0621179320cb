import { patched } from '@temporalio/workflow';
import type { Job, LastSuccess } from '../domain/jobs';
import { remoteActivities, storeActivities } from './activity-proxies';

const { lastSuccess, sendStaleAlert, dailyDataDrought, sendNoDataAlert, getOffsiteSettings, sendOffsiteAlert } =
  remoteActivities({
    startToCloseTimeout: '5 minutes',
    retry: { initialInterval: '10 seconds', maximumInterval: '5 minutes', maximumAttempts: 5 },
  });

/** The dead-man's switch: a backup that silently stopped running is the worst failure, so say it loudly. */
export async function backupWatchdog(input: { jobs: Job[] }): Promise<LastSuccess[]> {
  const checks: LastSuccess[] = [];
  for (const job of input.jobs) {
    const check = await lastSuccess(job);
    if (check.stale) await sendStaleAlert(check);
    checks.push(check);
    // Runs that succeed while finding nothing are a problem too (a wrong source path, a stopped model).
    if (job === 'daily' && patched('daily-data-drought')) {
      const drought = await dailyDataDrought();
      if (drought.problem) await sendNoDataAlert(drought);
    }
  }
  // Off-site copies that stopped arriving: each run reports "behind" and stays OK, so this says it loudly.
  if (patched('watchdog-offsite')) {
    const settings = await getOffsiteSettings();
    if (settings.repositories.length) {
      const { checkOffsiteFreshness } = storeActivities(settings.storeTaskQueue, {
        startToCloseTimeout: '10 minutes',
        retry: { initialInterval: '10 seconds', maximumInterval: '2 minutes', maximumAttempts: 3 },
      });
      const stale = (await checkOffsiteFreshness()).filter((f) => f.stale);
      if (stale.length) await sendOffsiteAlert(stale);
    }
  }
  return checks;
}
