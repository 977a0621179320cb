import { ActivityCancellationType, type ActivityOptions } from '@temporalio/workflow';

type Duration = NonNullable<ActivityOptions['startToCloseTimeout']>;

/** What every activity of a VM-changing workflow carries: its heartbeat timeout and a Web UI summary. */
export interface CommonOptions {
  /** Milliseconds. */
  heartbeatTimeout: number;
  summary: string;
  /** Another task queue than the run's: a hypervisor's own. */
  taskQueue?: string;
}

export function commonOptions(heartbeatTimeoutSeconds: number, summary: string): CommonOptions {
  return { heartbeatTimeout: heartbeatTimeoutSeconds * 1000, summary };
}

/** Short remote calls: a few tries, then the failure is reported. */
export function quick(common: CommonOptions): ActivityOptions {
  return {
    ...common,
    startToCloseTimeout: '10 minutes',
    retry: { initialInterval: '2 seconds', maximumInterval: '30 seconds', maximumAttempts: 5 },
  };
}

/**
 * Copies, checks, pushes, merges: liveness from heartbeats and real progress. `waitForCancel`: a cancel
 * waits until the remote process ended (the VM cycle's copies).
 */
export function long(
  common: CommonOptions,
  startToCloseTimeout: Duration,
  maximumAttempts: number,
  waitForCancel = false,
): ActivityOptions {
  return {
    ...common,
    startToCloseTimeout,
    ...(waitForCancel ? { cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED } : {}),
    retry: { initialInterval: '5 seconds', maximumInterval: '1 minute', maximumAttempts },
  };
}

/** Putting things back (a VM started again, disks put back): retried without limit until it works. */
export function forever(common: CommonOptions, startToCloseTimeout: Duration): ActivityOptions {
  return {
    ...common,
    startToCloseTimeout,
    retry: { initialInterval: '2 seconds', maximumInterval: '1 minute' }, // no maximumAttempts: unlimited
  };
}
