/** The two backup jobs, and the workflow type that runs each (the names the worker registers). */
export type Job = 'daily' | 'weekly';
export const JOBS: readonly Job[] = ['daily', 'weekly'];
export const JOB_WORKFLOW_TYPE = {
  daily: 'dailySupimBackup',
  weekly: 'weeklyVmBackup',
} as const satisfies Record<Job, string>;
