import { patched } from '@temporalio/workflow';
import type { LastSuccess } from '../activities/watchdog';
import type { Job } from '../domain/jobs';
import { remoteActivities } from './activity-proxies';

const { lastSuccess, sendStaleAlert, dailyDataDrought, sendNoDataAlert } = remoteActivities({
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
  return checks;
}
