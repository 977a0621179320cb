/** The two backup jobs, and the workflow type that runs each (the names the worker registers). */
export type Job = 'daily' | 'weekly';
export const JOBS: readonly Job[] = ['daily', 'weekly'];
export const JOB_WORKFLOW_TYPE = {
  daily: 'dailySupimBackup',
  weekly: 'weeklyVmBackup',
} as const satisfies Record<Job, string>;

/** The watchdog's finding for one job: when it last succeeded, and whether that is too long ago. */
export interface LastSuccess {
  job: Job;
  workflowType: string;
  /** When the newest successful run closed; undefined if none was found. */
  at?: string;
  workflowId?: string;
  ageHours?: number;
  maxAgeHours: number;
  stale: boolean;
}
