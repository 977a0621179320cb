import type { Client } from '@temporalio/client';
import { Argument } from 'commander';
import { addDays, format } from 'date-fns';
import type { Config } from '../../config/schema';
import type { DailySummary } from '../../domain/daily-summary';
import { calendarDay } from '../../domain/julian-day';
import { dateOption, EXIT, jsonOption, output, UsageError, type CliCommand } from './command-kit';
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

export const backfillCommand: CliCommand = {
  name: ['backfill'],
  summary: 'one daily run per date from --from to --to, one after the other; exit 0 only if every run is OK',
  define: (command) =>
    jsonOption(command)
      .addArgument(new Argument('<job>', 'the job (only daily can be backfilled)').choices(['daily']))
      .addOption(dateOption('--from <YYYY-MM-DD>', 'first date', true))
      .addOption(dateOption('--to <YYYY-MM-DD>', 'last date (inclusive)', true)),
  run: (cli, command) =>
    cli.withClient(async (client, config) => {
      const { from, to, json } = command.opts<{ from: string; to: string; json: boolean }>();
      if (from > to) throw new UsageError(`--from ${from} is after --to ${to}`);
      const runs = await backfillDaily(client, config, from, to, (date, summary) => {
        if (!json)
          console.log(
            `${date}: ${summary.ok ? 'OK' : 'FAILED'} ${summary.days.map((d) => `${d.day.label} ${d.status}`).join(', ')}`,
          );
      });
      if (json) output(command, runs, () => []);
      return runs.every((r) => r.ok) ? EXIT.ok : EXIT.notOk;
    }),
};
