import { CancellationScope, log, patched, workflowInfo, type ActivityOptions } from '@temporalio/workflow';
import { remoteActivities, storeActivities } from './activity-proxies';
import type { RestoreReportRequest } from '../domain/restore-report';
import { failureText } from './failure-text';

export interface RestoreSettings {
  storeTaskQueue: string;
  heartbeatTimeoutSeconds: number;
  bootTimeoutSeconds: number;
}

export const { getRestoreSettings } = remoteActivities({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '2 seconds', maximumAttempts: 5 },
});

/** The activity proxies of the restore workflows: short remote calls, long pushes, and compensations. */
export function restoreActivities(settings: RestoreSettings, summary: string) {
  const common = { heartbeatTimeout: settings.heartbeatTimeoutSeconds * 1000, summary };
  /** A boot test's time limit (from its first attempt, see bootTestStartedAtMs) and 5 minutes to clean up. */
  const bootLimit = (settings.bootTimeoutSeconds + 300) * 1000;
  const quick: ActivityOptions = {
    ...common,
    startToCloseTimeout: '10 minutes',
    retry: { initialInterval: '2 seconds', maximumInterval: '30 seconds', maximumAttempts: 5 },
  };
  /** Pushes and day restores: liveness from heartbeats, each retry resumes where the last one got to. */
  const long: ActivityOptions = {
    ...common,
    startToCloseTimeout: '12 hours',
    retry: { initialInterval: '5 seconds', maximumInterval: '1 minute', maximumAttempts: 5 },
  };
  return {
    quick: remoteActivities(quick),
    storeQuick: storeActivities(settings.storeTaskQueue, quick),
    storeLong: storeActivities(settings.storeTaskQueue, long),
    boot: remoteActivities({
      ...common,
      startToCloseTimeout: bootLimit,
      // All attempts together end with the test's own limit and the clean-up: a retry cannot keep going.
      ...(patched('boot-test-schedule-to-close') ? { scheduleToCloseTimeout: bootLimit } : {}),
      retry: { initialInterval: '5 seconds', maximumAttempts: 3 },
    }),
    /** Putting things back: retried until it works, whatever happens. */
    forever: remoteActivities({
      ...common,
      startToCloseTimeout: '30 minutes',
      retry: { initialInterval: '2 seconds', maximumInterval: '1 minute' },
    }),
  };
}

const { sendRestoreReport } = remoteActivities({
  startToCloseTimeout: '2 minutes',
  retry: { initialInterval: '10 seconds', backoffCoefficient: 2, maximumInterval: '10 minutes', maximumAttempts: 8 },
});

/** Sends the restore's report from its finally-path; a report that cannot be sent is logged, not thrown. */
export async function reportRestore(request: DistributiveOmit<RestoreReportRequest, 'link'>): Promise<void> {
  const { namespace, workflowId, runId } = workflowInfo();
  try {
    await CancellationScope.nonCancellable(() =>
      sendRestoreReport({ ...request, link: { namespace, workflowId, runId } } as RestoreReportRequest),
    );
  } catch (err) {
    log.warn('the restore report could not be sent', { error: failureText(err) });
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
