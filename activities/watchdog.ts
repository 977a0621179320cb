import type { Client } from '@temporalio/client';
import type { Config } from '../config/schema';
import { fileStamp } from '../domain/format';
import { JOB_WORKFLOW_TYPE, type Job } from '../domain/jobs';
import type { Report } from '../domain/report';
import { escapeHtml } from '../domain/report';
import { Mailer, type Delivery } from '../adapters/mail/mailer';

export interface WatchdogDeps {
  config: Config;
  /** A Temporal client for visibility queries; the worker builds it from config. */
  temporalClient?: () => Promise<Client>;
  now?: () => Date;
}

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

const LOOK_AT = 50;

export function createWatchdogActivities({ config, temporalClient, now = () => new Date() }: WatchdogDeps) {
  /** Finds the newest run of the job whose summary says ok, and whether it is older than allowed. */
  async function lastSuccess(job: Job): Promise<LastSuccess> {
    if (!temporalClient) throw new Error('the watchdog needs a Temporal client');
    const client = await temporalClient();
    const maxAgeHours = config.schedules.watchdog.maxAgeHours[job];
    const query = `WorkflowType = '${JOB_WORKFLOW_TYPE[job]}' AND ExecutionStatus = 'Completed'`;
    let seen = 0;
    for await (const execution of client.workflow.list({ query })) {
      if (++seen > LOOK_AT) break;
      const result = (await client.workflow.getHandle(execution.workflowId, execution.runId).result()) as {
        ok?: boolean;
      };
      if (!result?.ok || !execution.closeTime) continue;
      const ageHours = (now().getTime() - execution.closeTime.getTime()) / 3_600_000;
      return {
        job,
        workflowType: JOB_WORKFLOW_TYPE[job],
        at: execution.closeTime.toISOString(),
        workflowId: execution.workflowId,
        ageHours,
        maxAgeHours,
        stale: ageHours > maxAgeHours,
      };
    }
    return { job, workflowType: JOB_WORKFLOW_TYPE[job], maxAgeHours, stale: true };
  }

  /** Mails the job's recipients that backups silently stopped. */
  async function sendStaleAlert(stale: LastSuccess): Promise<Delivery> {
    const since = stale.at
      ? `since ${stale.at} (${stale.ageHours!.toFixed(1)} h ago, ${stale.workflowId})`
      : 'on record';
    const subject = `[cluster-backup] ALERT no successful ${stale.job} backup ${since}`;
    const text = [
      `No ${stale.job} backup has succeeded ${since}; the limit is ${stale.maxAgeHours} h.`,
      'Check that the worker runs, that the schedule is not paused (cluster-backup schedules list),',
      'and the last runs in the Temporal Web UI.',
    ].join('\n');
    const report: Report = { job: stale.job, ok: false, subject, text, html: `<p>${escapeHtml(text)}</p>` };
    return new Mailer(config.mail).deliver(report, `${fileStamp(now())}-watchdog-${stale.job}`);
  }

  return { lastSuccess, sendStaleAlert };
}
