import { log, upsertSearchAttributes } from '@temporalio/workflow';
import type { Job } from '../domain/jobs';
import type { RunOutcome } from '../domain/run-outcome';
import { outcomeResult } from '../domain/report-trend';
import { BACKUP_HYPERVISOR, BACKUP_JOB, BACKUP_PERIOD, BACKUP_RESULT } from '../domain/search-attributes';
import { remoteActivities } from './activity-proxies';
import { failureText } from './failure-text';

const { registeredSearchAttributes } = remoteActivities({
  startToCloseTimeout: '30 seconds',
  retry: { maximumAttempts: 3 },
});

/**
 * Tags the run with the backup search attributes (job, period, result) so operators can filter runs in the
 * Web UI or with `temporal workflow list --query`. Sets only the keys the namespace has registered.
 */
export class RunTags {
  private constructor(private readonly registered: ReadonlySet<string>) {}

  private static async registered(): Promise<RunTags> {
    const registered = await registeredSearchAttributes().catch((err: unknown) => {
      log.warn('runs are not tagged with search attributes', { error: failureText(err) });
      return [];
    });
    return new RunTags(new Set(registered));
  }

  static async start(job: Job): Promise<RunTags> {
    const tags = await RunTags.registered();
    tags.set(BACKUP_JOB, job);
    tags.set(BACKUP_RESULT, 'running');
    return tags;
  }

  /** A weekly run's child run for one hypervisor: `BackupHypervisor = '<name>'` lists that host's runs. */
  static async hostRun(hypervisor: string): Promise<void> {
    (await RunTags.registered()).set(BACKUP_HYPERVISOR, hypervisor);
  }

  period(label: string): void {
    this.set(BACKUP_PERIOD, label);
  }

  finish(outcome: RunOutcome<{ ok: boolean }>): void {
    this.set(BACKUP_RESULT, outcomeResult(outcome));
  }

  private set(key: typeof BACKUP_JOB, value: string): void {
    if (this.registered.has(key.name)) upsertSearchAttributes([{ key, value }]);
  }
}
