/** The daily run's email report: one row per julian day, the notes, the last runs, the store. */
import { dailyRunOk, resticNote, type DailySummary, type DayResult } from './daily-summary';
import { formatBytes } from './format';
import { offsiteNotes, offsiteSubjectNote } from './offsite';
import { barChart, rowsTable, toneOf, type Tone } from './report-html';
import {
  assemble,
  bytes,
  PREFIX,
  RESULT_WORD,
  runTone,
  seconds,
  type Report,
  type ReportContext,
} from './report-layout';
import { dailyTrendPoint, outcomeResult, TREND_RUNS, trendOf, type DailyTrendPoint } from './report-trend';
import type { RunLink, RunOutcome } from './run-outcome';

export function dailyReport(
  outcome: RunOutcome<DailySummary>,
  link: RunLink,
  runLabel: string,
  context: ReportContext<DailyTrendPoint> = {},
): Report {
  const summary = outcome.summary;
  const days = summary?.days ?? [];
  const done = days.filter((d) => d.status === 'copied' || d.status === 'complete').length;
  const notYet = days.filter((d) => d.status === 'not-yet').length;
  const failed = days.filter((d) => !dailyRunOk([d]));
  const problem = (d: DayResult) =>
    d.status === 'failed' ? (d.reason ?? 'failed') : `${d.status.toUpperCase()} (${d.reason ?? 'no data'})`;
  const ok = outcome.state === 'completed' && outcome.summary.ok;
  let subject: string;
  if (outcome.state === 'cancelled') subject = `${PREFIX} CANCELLED daily ${runLabel}`;
  else if (outcome.state === 'failed') subject = `${PREFIX} FAILED daily ${runLabel}: ${outcome.error}`;
  else if (!ok)
    subject = `${PREFIX} FAILED daily ${runLabel}: ${failed.map((d) => `${d.day.label} ${problem(d)}`).join('; ')}`;
  else
    subject = `${PREFIX} OK daily ${runLabel} (${done}/${days.length} days${notYet ? `, ${notYet} not yet` : ''})${offsiteSubjectNote(summary?.offsite)}`;

  const headers = ['julian day', 'date', 'status', 'files copied', 'bytes', 'duration'];
  const rows = days.map((d) => [
    d.day.label,
    d.day.isoDate,
    d.status,
    `${d.filesCopied}/${d.filesInSource}`,
    bytes(d.bytesCopied),
    seconds(d.durationMs),
  ]);
  const notes = [
    ...days
      .filter((d) => d.reason)
      .map((d) => ({ text: `${d.day.label} ${d.status}: ${d.reason}`, tone: toneOf(d.status), inTable: true })),
    ...days.flatMap((d) =>
      (d.failedFiles ?? []).map((f) => ({
        text: `${d.day.label}: NOT copied: ${f.path}: ${f.reason}`,
        tone: 'bad' as Tone,
      })),
    ),
    ...days.flatMap((d) => {
      const text = resticNote(d);
      if (!text) return [];
      return [
        {
          text,
          tone: (d.restic!.status === 'failed' ? 'bad' : d.restic!.status === 'skipped' ? 'warn' : 'good') as Tone,
        },
      ];
    }),
    ...[
      ...days.flatMap((d) => d.superseded.map((s) => `${d.day.label}: kept the longer old copy of ${s}`)),
      ...days
        .filter((d) => (d.supersededCount ?? 0) > d.superseded.length)
        .map((d) => `${d.day.label}: kept the longer old copies of ${d.supersededCount! - d.superseded.length} more file(s)`),
      ...days
        .filter((d) => d.skippedCount)
        .map((d) => `${d.day.label}: ${d.skippedCount} symlink(s)/special file(s) not followed`),
    ].map((text) => ({ text, tone: 'warn' as Tone })),
    ...offsiteNotes(summary?.offsite, formatBytes),
  ];
  const intro = [
    outcome.state === 'completed'
      ? `Daily SUPIM-DAVS backup for ${summary!.runDate} (${summary!.timeZone}): ${ok ? 'OK' : 'FAILED'}.`
      : outcome.state === 'failed'
        ? `Daily SUPIM-DAVS backup ${runLabel} FAILED: ${outcome.error}`
        : `Daily SUPIM-DAVS backup ${runLabel} was CANCELLED.`,
  ];
  // A run that ended before it had a summary has nothing to add up.
  const totals = !summary
    ? []
    : [
        { value: `${done}/${days.length}`, label: 'days backed up' },
        { value: formatBytes(days.reduce((s, d) => s + d.bytesCopied, 0)), label: 'copied' },
        { value: String(days.reduce((s, d) => s + d.filesCopied, 0)), label: 'files copied' },
      ];
  const trend = context.pastRuns
    ? trendOf(dailyTrendPoint(runLabel, outcome), context.pastRuns, TREND_RUNS.daily)
    : undefined;
  return assemble({
    job: 'daily',
    ok,
    tone: runTone(outcome),
    subject,
    title: `${RESULT_WORD[outcomeResult(outcome)]} · daily backup ${runLabel}`,
    intro,
    totals,
    text: {
      tables: days.length ? [{ headers, rows }] : [],
      ...(trend && {
        trend: {
          headers: ['run', 'result', 'copied', 'files'],
          rows: trend.map((t) => [t.label, t.result, formatBytes(t.bytesCopied), String(t.filesCopied)]),
        },
      }),
    },
    html: {
      main: days.length
        ? [
            {
              title: 'Julian days',
              content: rowsTable(
                ['day', 'status', 'files', 'bytes', 'time'],
                rows.map((r, i) => ({
                  cells: [
                    { text: r[0]!, sub: r[1]! },
                    { text: r[2]!, status: true },
                    { text: r[3]!, align: 'right' as const },
                    { text: r[4]!, align: 'right' as const },
                    { text: r[5]!, align: 'right' as const },
                  ],
                  ...(days[i]!.reason ? { note: { text: days[i]!.reason!, tone: toneOf(r[2]!) } } : {}),
                })),
              ),
            },
          ]
        : [],
      ...(trend && {
        trend: barChart(
          `Bytes copied per daily run, last ${trend.length}`,
          trend.map((t) => ({
            label: t.label.slice(5),
            value: t.bytesCopied,
            tone: toneOf(t.result === 'incomplete' ? 'failed' : t.result),
            title: `${t.label}: ${t.result}, ${formatBytes(t.bytesCopied)}, ${t.filesCopied} files`,
            current: t.label === runLabel,
          })),
          formatBytes,
        ),
      }),
    },
    stores: context.stores ?? [],
    notes,
    link,
  });
}
