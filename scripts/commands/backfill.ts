import type { Client } from '@temporalio/client';
import { addDays, format } from 'date-fns';
import type { Config } from '../../config/schema';
import type { DailySummary } from '../../domain/daily-summary';
import { calendarDay } from '../../domain/julian-day';
import { startDaily } from './run-daily';

/** Every calendar date from `from` to `to`, inclusive, across month and year ends. */
export function datesBetween(from: string, to: string): string[] {
  calendarDay(from);
  calendarDay(to);
  if (from > to) throw new Error(`--from ${from} is after --to ${to}`);
  const dates: string[] = [];
  // Local noon: no daylight-saving shift can move it into another day.
  for (let d = new Date(`${from}T12:00:00`); format(d, 'yyyy-MM-dd') <= to; d = addDays(d, 1))
    dates.push(format(d, 'yyyy-MM-dd'));
  return dates;
}

/** One daily run per date, one after the other (each waits for the last): a backfill never floods the hosts. */
export async function backfillDaily(
  client: Client,
  config: Config,
  from: string,
  to: string,
  onRun: (date: string, summary: DailySummary) => void,
): Promise<DailySummary[]> {
  const summaries: DailySummary[] = [];
  for (const date of datesBetween(from, to)) {
    const summary = await (await startDaily(client, config, date)).result();
    onRun(date, summary);
    summaries.push(summary);
  }
  return summaries;
}
