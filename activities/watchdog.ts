import type { Client } from '@temporalio/client';
import type { Config } from '../config/schema';
import { dayHasNoData, type DailySummary } from '../domain/daily-summary';
import { fileStamp } from '../domain/format';
import { JOB_WORKFLOW_TYPE, type Job, type LastSuccess } from '../domain/jobs';
import type { Report } from '../domain/report';
import { escapeHtml } from '../domain/report';
import { offsiteStaleLines, type OffsiteFreshness } from '../domain/offsite';
import type { Delivery } from '../adapters/mail/mailer';
import type { Services } from './services';
import { missingDependency } from './failures';

export interface WatchdogDeps {
  config: Config;
  /** The mailer, built once by the worker. */
  services: Pick<Services, 'mailer'>;
  /** A Temporal client for visibility queries; the worker builds it from config. */
  temporalClient?: () => Promise<Client>;
  now?: () => Date;
}

export type { LastSuccess };

const LOOK_AT = 50;

export interface DataDrought {
  /** Daily runs in a row (newest first, one per run date) whose every day had no data at all. */
  runsWithoutData: number;
  limit: number;
  /** Run dates of those runs, newest first. */
  runDates: string[];
  problem: boolean;
}

export function createWatchdogActivities({ config, services, temporalClient, now = () => new Date() }: WatchdogDeps) {
  const { mailer } = services;

  /** Finds the newest run of the job whose summary says ok, and whether it is older than allowed. */
  async function lastSuccess(job: Job): Promise<LastSuccess> {
    if (!temporalClient) throw missingDependency('the watchdog needs a Temporal client');
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

  /**
   * Counts the newest daily runs that found no data for any day (folders absent or empty). Every such run
   * is "OK, nothing to copy yet", so without this a wrong sourceTemplate or a stopped model stays quiet.
   */
  async function dailyDataDrought(): Promise<DataDrought> {
    if (!temporalClient) throw missingDependency('the watchdog needs a Temporal client');
    const limit = config.schedules.watchdog.maxDailyRunsWithoutData;
    const runDates: string[] = [];
    if (limit > 0) {
      const client = await temporalClient();
      const query = `WorkflowType = '${JOB_WORKFLOW_TYPE.daily}' AND ExecutionStatus = 'Completed'`;
      let seen = 0;
      for await (const execution of client.workflow.list({ query })) {
        if (++seen > LOOK_AT || runDates.length >= limit) break;
        const summary = (await client.workflow.getHandle(execution.workflowId, execution.runId).result()) as
          DailySummary | undefined;
        if (!summary?.days?.length) continue;
        if (!summary.days.every(dayHasNoData)) break;
        if (!runDates.includes(summary.runDate)) runDates.push(summary.runDate);
      }
    }
    return { runsWithoutData: runDates.length, limit, runDates, problem: limit > 0 && runDates.length >= limit };
  }

  async function sendNoDataAlert(drought: DataDrought): Promise<Delivery> {
    const subject = `[cluster-backup] ALERT daily backup found no data for ${drought.runsWithoutData} runs (${drought.runDates.at(-1)} to ${drought.runDates[0]})`;
    const text = [
      `The last ${drought.runsWithoutData} daily runs (${drought.runDates.join(', ')}) found no SUPIM-DAVS data for any day:`,
      'every day folder was missing or empty. Check supim.sourceTemplate and supim.host in the config,',
      'and that the model is running on the compute host.',
    ].join('\n');
    const report: Report = { job: 'daily', ok: false, subject, text, html: `<p>${escapeHtml(text)}</p>` };
    return mailer.deliver(report, `${fileStamp(now())}-watchdog-daily-no-data`);
  }

  /** Mails that off-site copies stopped arriving (or a repository there cannot be read). */
  async function sendOffsiteAlert(stale: OffsiteFreshness[]): Promise<Delivery> {
    const subject = `[cluster-backup] ALERT off-site copies late: ${stale.map((f) => f.repository).join(', ')}`;
    const text = [
      ...offsiteStaleLines(stale),
      '',
      'The local backups may be fine: the copies to these repositories did not get there (see the runs',
      "reports' off-site lines: behind, damaged). Check the off-site server and the link to it.",
    ].join('\n');
    const report: Report = { job: 'daily', ok: false, subject, text, html: `<pre>${escapeHtml(text)}</pre>` };
    return mailer.deliver(report, `${fileStamp(now())}-watchdog-offsite`);
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
    return mailer.deliver(report, `${fileStamp(now())}-watchdog-${stale.job}`);
  }

  return { lastSuccess, sendStaleAlert, dailyDataDrought, sendNoDataAlert, sendOffsiteAlert };
}
