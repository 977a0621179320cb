import type { Client } from '@temporalio/client';
import { log } from '@temporalio/activity';
import type { Config } from '../config/schema';
import type { DailySummary } from '../domain/daily-summary';
import { fileStamp } from '../domain/format';
import { dailyReport, weeklyReport, type ReportRequest, type RunOutcome } from '../domain/report';
import {
  dailyTrendPoint,
  leftToAnotherRun,
  TREND_RUNS,
  weeklyTrendPoint,
  type DailyTrendPoint,
  type WeeklyTrendPoint,
} from '../domain/report-trend';
import type { StoreUsage } from '../domain/store-usage';
import type { WeeklySummary } from '../domain/weekly-summary';
import { measureStores } from '../adapters/image-sets/store-usage';
import { readRestoreTestLog } from '../adapters/image-sets/restore-test-log';
import type { Delivery } from '../adapters/mail/mailer';
import type { Services } from './services';
import { backupMetrics, type BackupMetrics } from '../adapters/metrics/backup-metrics';
import { pastRuns } from '../adapters/temporal/past-runs';

export interface ReportDeps {
  config: Config;
  /** The mailer, built once by the worker. */
  services: Pick<Services, 'mailer'>;
  /** For the last runs the report draws; without it the report shows this run only. */
  temporalClient?: () => Promise<Client>;
  now?: () => Date;
  metrics?: () => BackupMetrics;
}

export type { ReportRequest };

/** A report is not held back for its extras: what cannot be read in this long is left out. */
const EXTRAS_TIMEOUT_MS = 30_000;
const PERIOD_LABEL = /^\d{4}-(\d{3}|W\d{2})$/;

async function withinTime<T>(what: string, work: Promise<T>): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => {
      log.warn(`the report goes without ${what}: no answer in ${EXTRAS_TIMEOUT_MS / 1000} s`);
      resolve(undefined);
    }, EXTRAS_TIMEOUT_MS);
  });
  try {
    return await Promise.race([
      work.catch((err: unknown) => {
        log.warn(`the report goes without ${what}`, { error: String(err) });
        return undefined;
      }),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export function createReportActivities({
  config,
  services,
  temporalClient,
  now = () => new Date(),
  metrics = backupMetrics,
}: ReportDeps) {
  /** The job's earlier runs as trend points, newest first: one per period, this run's period excluded. */
  async function earlierRuns(request: ReportRequest): Promise<(DailyTrendPoint | WeeklyTrendPoint)[]> {
    const client = await temporalClient!();
    const points: (DailyTrendPoint | WeeklyTrendPoint)[] = [];
    const periods = new Set([request.runLabel]);
    // Retried and manual runs of a period count once (the newest): look at a few more runs than are drawn.
    let budget = TREND_RUNS[request.job] * 3;
    for await (const run of pastRuns(client, request.job)) {
      if (--budget < 0 || periods.size >= TREND_RUNS[request.job]) break;
      if (!run.label || !PERIOD_LABEL.test(run.label) || periods.has(run.label)) continue;
      if (leftToAnotherRun(run.outcome)) continue;
      periods.add(run.label);
      points.push(
        request.job === 'daily'
          ? dailyTrendPoint(run.label, run.outcome as RunOutcome<DailySummary>)
          : weeklyTrendPoint(run.label, run.outcome as RunOutcome<WeeklySummary>),
      );
    }
    return points;
  }

  /** Renders the run's report and delivers it (SMTP, or the outbox). Returns where it went and its subject. */
  async function sendReport(request: ReportRequest): Promise<Delivery & { subject: string }> {
    const link = { ...request.link, uiBaseUrl: config.mail.webUiBaseUrl };
    const [past, stores, restoreTests] = await Promise.all([
      temporalClient ? withinTime('the last runs', earlierRuns(request)) : undefined,
      withinTime<StoreUsage[]>('the store usage', measureStores(config)),
      request.job === 'weekly' && config.store
        ? withinTime('the boot tests', readRestoreTestLog(config.store.root))
        : undefined,
    ]);
    // The metrics follow the run as soon as it is known, whether or not the mail then gets through.
    metrics().recordRun(request, now());
    if (stores) metrics().setStoreUsage(stores);
    const report =
      request.job === 'daily'
        ? dailyReport(request.outcome, link, request.runLabel, { pastRuns: past as DailyTrendPoint[], stores })
        : weeklyReport(request.outcome, link, request.runLabel, {
            pastRuns: past as WeeklyTrendPoint[],
            stores,
            ...(restoreTests ? { restoreTests } : {}),
          });
    const delivery = await services.mailer.deliver(report, `${fileStamp(now())}-${request.link.workflowId}`);
    return { ...delivery, subject: report.subject };
  }
  return { sendReport };
}
