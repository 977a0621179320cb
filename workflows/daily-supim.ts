import { ActivityFailure, ApplicationFailure, proxyActivities, workflowInfo } from '@temporalio/workflow';
import {
  blankDayResult,
  dailyRunOk,
  type DailySettings,
  type DailySummary,
  type DayResult,
} from '../domain/daily-summary';
import { isoDateInZone, julianDaysEndingOn } from '../domain/julian-day';
import type { Activities } from '../activities';

export interface DailySupimInput {
  /** YYYY-MM-DD; default: the day the workflow started, in the configured time zone. */
  date?: string;
}

const { getDailySettings } = proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: { maximumAttempts: 5 },
});

function dayCopyActivities(settings: DailySettings) {
  return proxyActivities<Activities>({
    // A large day over a slow link may take hours; liveness comes from heartbeats, not from this bound.
    startToCloseTimeout: '12 hours',
    heartbeatTimeout: `${settings.heartbeatTimeoutSeconds} seconds`,
    retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumInterval: '5 minutes', maximumAttempts: 8 },
  });
}

function failureText(err: unknown): string {
  let e: unknown = err;
  while (e instanceof ActivityFailure && e.cause) e = e.cause;
  return e instanceof Error ? e.message : String(e);
}

/** Copies today's and the previous days' SUPIM-DAVS outputs into the backup store, day by day. */
export async function dailySupimBackup(input: DailySupimInput = {}): Promise<DailySummary> {
  const startedAt = new Date().toISOString();
  const settings = await getDailySettings();
  const runDate = input.date ?? isoDateInZone(workflowInfo().startTime, settings.timeZone);
  const days = julianDaysEndingOn(runDate, settings.daysBack);
  const { backupSupimDay } = dayCopyActivities(settings);

  const results: DayResult[] = [];
  for (const day of days) {
    try {
      results.push(await backupSupimDay(day));
    } catch (err) {
      // One day's failure must not stop the others; the summary carries it.
      results.push({ ...blankDayResult(day, settings, 'failed'), reason: failureText(err) });
    }
  }
  if (results.length === 0) throw ApplicationFailure.nonRetryable('no days to back up');
  return {
    runDate,
    timeZone: settings.timeZone,
    days: results,
    ok: dailyRunOk(results),
    startedAt,
    finishedAt: new Date().toISOString(),
  };
}
