import { patched, workflowInfo } from '@temporalio/workflow';
import { remoteActivities, storeActivities } from './activity-proxies';
import type { RestoreReportRequest } from '../domain/restore-report';
import { commonOptions, forever, long, quick, sendReportSafely } from './saga';

export interface RestoreSettings {
  storeTaskQueue: string;
  /** The VM's hypervisor's task queue (a restore with --hypervisor); absent: the run's own queue. */
  taskQueue?: string;
  heartbeatTimeoutSeconds: number;
  bootTimeoutSeconds: number;
}

export const { getRestoreSettings } = remoteActivities({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '2 seconds', maximumAttempts: 5 },
});

/** The activity proxies of the restore workflows: short remote calls, long pushes, and compensations. */
export function restoreActivities(settings: RestoreSettings, summary: string) {
  const common = {
    ...commonOptions(settings.heartbeatTimeoutSeconds, summary),
    ...(settings.taskQueue !== undefined && { taskQueue: settings.taskQueue }),
  };
  /** A boot test's time limit (from its first attempt, see bootTestStartedAtMs) and 5 minutes to clean up. */
  const bootLimit = (settings.bootTimeoutSeconds + 300) * 1000;
  return {
    quick: remoteActivities(quick(common)),
    storeQuick: storeActivities(settings.storeTaskQueue, quick(common)),
    /** Pushes and day restores: each retry resumes where the last one got to. */
    storeLong: storeActivities(settings.storeTaskQueue, long(common, '12 hours', 5)),
    boot: remoteActivities({
      ...common,
      startToCloseTimeout: bootLimit,
      // All attempts together end with the test's own limit and the clean-up: a retry cannot keep going.
      ...(patched('boot-test-schedule-to-close') ? { scheduleToCloseTimeout: bootLimit } : {}),
      retry: { initialInterval: '5 seconds', maximumAttempts: 3 },
    }),
    /** Putting things back: retried until it works, whatever happens. */
    forever: remoteActivities(forever(common, '30 minutes')),
  };
}

const { sendRestoreReport } = remoteActivities({
  startToCloseTimeout: '2 minutes',
  retry: { initialInterval: '10 seconds', backoffCoefficient: 2, maximumInterval: '10 minutes', maximumAttempts: 8 },
});

/** Sends the restore's report from its finally-path; a report that cannot be sent is logged, not thrown. */
export async function reportRestore(request: DistributiveOmit<RestoreReportRequest, 'link'>): Promise<void> {
  const { namespace, workflowId, runId } = workflowInfo();
  await sendReportSafely('the restore report', () =>
    sendRestoreReport({ ...request, link: { namespace, workflowId, runId } } as RestoreReportRequest),
  );
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
