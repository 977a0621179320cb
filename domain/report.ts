/**
 * The email report of a run, as data: subject, plain text and HTML. Pure, so that what an operator reads
 * is tested as units; the mailer only delivers it. Every value is escaped in the HTML.
 */
import { dailyRunOk, type DailySummary, type DayResult } from './daily-summary';
import { formatBytes, formatDuration } from './format';
import type { Job } from './jobs';
import {
  barChart,
  card,
  escapeHtml,
  facts,
  footer,
  headline,
  notesList,
  page,
  rowsTable,
  section,
  tiles,
  toneOf,
  usageBar,
  type Tone,
} from './report-html';
import {
  dailyTrendPoint,
  leftToAnotherRun,
  outcomeResult,
  TREND_RUNS,
  trendOf,
  weeklyTrendPoint,
  type DailyTrendPoint,
  type WeeklyTrendPoint,
} from './report-trend';
import type { RestoreTestLog } from './restore';
import { freeFraction, type StoreUsage } from './store-usage';
import type { VmResult, WeeklySummary } from './weekly-summary';

export { escapeHtml } from './report-html';

export type RunOutcome<S> =
  | { state: 'completed'; summary: S }
  | { state: 'failed'; error: string; summary?: S }
  | { state: 'cancelled'; summary?: S };

export interface RunLink {
  namespace: string;
  workflowId: string;
  runId: string;
  /** e.g. http://backup-host:8233; without it the report names the workflow but links nowhere. */
  uiBaseUrl?: string;
}

/** What a workflow's finally-path hands the report activity. */
export type ReportRequest =
  | { job: 'daily'; outcome: RunOutcome<DailySummary>; link: Omit<RunLink, 'uiBaseUrl'>; runLabel: string }
  | { job: 'weekly'; outcome: RunOutcome<WeeklySummary>; link: Omit<RunLink, 'uiBaseUrl'>; runLabel: string };

/** What the report shows beyond the run itself; each part is left out when it could not be read. */
export interface ReportContext<P> {
  /** Earlier runs, newest first (the current one is added from its outcome). */
  pastRuns?: P[];
  stores?: StoreUsage[];
  /** The last boot test of each VM's stored images (weekly report). */
  restoreTests?: RestoreTestLog;
}

export interface Report {
  job: Job;
  ok: boolean;
  subject: string;
  text: string;
  html: string;
}

const PREFIX = '[cluster-backup]';

const bytes = (n: number | undefined) => (n === undefined ? '-' : formatBytes(n));
const seconds = (ms: number | undefined) => (ms === undefined ? '-' : formatDuration(ms));

export function runUrl(link: RunLink): string | undefined {
  if (!link.uiBaseUrl) return undefined;
  const base = link.uiBaseUrl.replace(/\/+$/, '');
  return `${base}/namespaces/${encodeURIComponent(link.namespace)}/workflows/${encodeURIComponent(link.workflowId)}/${encodeURIComponent(link.runId)}/history`;
}

interface Table {
  headers: string[];
  rows: string[][];
}

function textTable({ headers, rows }: Table): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

function storeText(stores: readonly StoreUsage[]): string[] {
  return stores.map(
    (s) =>
      `store ${s.stores.join(' + ')} ${s.path}: ${formatBytes(s.freeBytes)} free of ${formatBytes(s.totalBytes)} (${(freeFraction(s) * 100).toFixed(0)}%)` +
      (s.imageSetBytes !== undefined ? `, image sets kept: ${formatBytes(s.imageSetBytes)} (${s.imageSets ?? 0})` : ''),
  );
}

/** The parts both renderings share, each rendered twice: aligned text and inline-styled HTML. */
interface Parts {
  job: Job;
  ok: boolean;
  tone: Tone;
  subject: string;
  title: string;
  intro: string[];
  totals: { value: string; label: string }[];
  text: { tables: Table[]; trend?: Table };
  html: { main: { title: string; content: string }[]; trend?: string };
  stores: StoreUsage[];
  /** inTable: already shown in the HTML table or card it belongs to; the text part lists it here. */
  notes: { text: string; tone: Tone; inTable?: boolean }[];
  link: RunLink;
}

function assemble(p: Parts): Report {
  const url = runUrl(p.link);
  const where = `Workflow ${p.link.workflowId} (run ${p.link.runId}, namespace ${p.link.namespace})`;
  const text = [
    p.intro.join('\n'),
    p.totals.map((t) => `${t.label}: ${t.value}`).join(', '),
    ...p.text.tables.map(textTable),
    p.notes.map((n) => n.text).join('\n'),
    p.text.trend ? `Last runs:\n${textTable(p.text.trend)}` : '',
    storeText(p.stores).join('\n'),
    url ? `${where}: ${url}` : where,
  ]
    .filter(Boolean)
    .join('\n\n');
  const htmlNotes = p.notes.filter((n) => !n.inTable);
  const html = page([
    headline(p.tone, p.title, p.intro),
    ...(p.totals.length ? [section('Totals', tiles(p.totals))] : []),
    ...p.html.main.map((m) => section(m.title, m.content)),
    ...(htmlNotes.length ? [section('Notes', notesList(htmlNotes))] : []),
    ...(p.html.trend ? [section('Last runs', p.html.trend)] : []),
    ...(p.stores.length ? [section('Backup store', p.stores.map(usageBar).join('\n'))] : []),
    footer(url ? `<a href="${escapeHtml(url)}" style="color:#1a73e8">${escapeHtml(where)}</a>` : escapeHtml(where)),
  ]);
  return { job: p.job, ok: p.ok, subject: p.subject, text, html };
}

function runTone(outcome: RunOutcome<{ ok: boolean }>): Tone {
  return toneOf(outcomeResult(outcome) === 'incomplete' ? 'failed' : outcomeResult(outcome));
}

const RESULT_WORD = { ok: 'OK', incomplete: 'FAILED', failed: 'FAILED', cancelled: 'CANCELLED' } as const;

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
  else subject = `${PREFIX} OK daily ${runLabel} (${done}/${days.length} days${notYet ? `, ${notYet} not yet` : ''})`;

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
    ...[
      ...days.flatMap((d) => d.superseded.map((s) => `${d.day.label}: kept the longer old copy of ${s}`)),
      ...days
        .filter((d) => d.skippedCount)
        .map((d) => `${d.day.label}: ${d.skippedCount} symlink(s)/special file(s) not followed`),
    ].map((text) => ({ text, tone: 'warn' as Tone })),
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

function vmState(vm: VmResult): string {
  if (vm.runningAtEnd === true) return 'running';
  if (vm.runningAtEnd === false) return 'NOT RUNNING';
  if (vm.wasRunning === false) return 'off (as found)';
  return 'untouched';
}

function weeklyTrendHtml(trend: WeeklyTrendPoint[], runLabel: string): string {
  const vms = [...new Set(trend.flatMap((t) => t.vms.map((v) => v.vm)))];
  const chart = (
    vm: string,
    caption: string,
    pick: (v: WeeklyTrendPoint['vms'][number]) => number | undefined,
    format: (n: number) => string,
  ) =>
    barChart(
      caption,
      trend.map((t) => {
        const point = t.vms.find((v) => v.vm === vm);
        const value = point && pick(point);
        return {
          label: t.label.replace(/^\d{4}-W/, ''),
          value,
          tone: point
            ? toneOf(point.status)
            : toneOf(t.result === 'ok' ? '-' : t.result === 'incomplete' ? 'failed' : t.result),
          title: `${t.label} ${vm}: ${point?.status ?? `not in the run (${t.result})`}${value !== undefined ? `, ${format(value)}` : ''}`,
          current: t.label === runLabel,
        };
      }),
      format,
    );
  return vms
    .map(
      (vm) =>
        `<div style="margin:0 0 10px"><b style="word-break:break-all">${escapeHtml(vm)}</b>` +
        `<table role="presentation" width="100%" cellpadding="0" cellspacing="0" style="border-collapse:collapse;table-layout:fixed"><tr>` +
        `<td style="padding-right:6px;vertical-align:top">${chart(vm, 'image size by week', (v) => v.imageBytes, formatBytes)}</td>` +
        `<td style="padding-left:6px;vertical-align:top">${chart(vm, 'downtime by week', (v) => v.downtimeMs, formatDuration)}</td>` +
        `</tr></table></div>`,
    )
    .join('\n');
}

export function weeklyReport(
  outcome: RunOutcome<WeeklySummary>,
  link: RunLink,
  runLabel: string,
  context: ReportContext<WeeklyTrendPoint> = {},
): Report {
  const summary = outcome.summary;
  const vms = summary?.vms ?? [];
  const ok = outcome.state === 'completed' && outcome.summary.ok;
  const problems = vms.filter((v) => v.status !== 'backed-up');
  const firstProblem =
    problems[0] &&
    `${problems[0].vm} ${problems[0].failedStep ? `${problems[0].failedStep} ` : ''}${problems[0].status}`;
  let subject: string;
  if (outcome.state === 'cancelled') subject = `${PREFIX} CANCELLED weekly ${runLabel}`;
  else if (outcome.state === 'failed') subject = `${PREFIX} FAILED weekly ${runLabel}: ${outcome.error}`;
  else if (summary?.aborted) subject = `${PREFIX} ABORTED weekly ${runLabel}: ${summary.aborted}`;
  else if (summary?.alreadyRunning)
    subject = `${PREFIX} SKIPPED weekly ${runLabel}: ${summary.alreadyRunning} was already running`;
  else if (!ok)
    subject = `${PREFIX} FAILED weekly ${runLabel}: ${firstProblem}${problems.length > 1 ? ` (+${problems.length - 1} more)` : ''}`;
  else subject = `${PREFIX} OK weekly ${runLabel} (${vms.length}/${vms.length} VMs)`;

  const imageBytes = (v: VmResult) => v.images.reduce((s, i) => s + i.bytes, 0);
  const change = (v: VmResult) =>
    v.previousImageBytes && imageBytes(v)
      ? `${(((imageBytes(v) - v.previousImageBytes) / v.previousImageBytes) * 100).toFixed(1)}%`
      : '-';
  const hashes = (v: VmResult) =>
    v.stored.length ? (v.stored.every((s, i) => s.sha256 === v.images[i]?.sha256) ? 'match' : 'MISMATCH') : '-';
  const vmRows = vms.map((v) => [
    v.vm,
    v.status,
    vmState(v),
    seconds(v.downtimeMs),
    v.images.length ? bytes(imageBytes(v)) : '-',
    change(v),
    hashes(v),
  ]);
  const stepRows = vms.flatMap((v) => v.steps.map((s) => [v.vm, s.step, seconds(s.ms)]));
  const spaceRows = vms.map((v) => [
    v.vm,
    bytes(v.imageAreaFreeBefore),
    bytes(v.imageAreaFreeAfter),
    bytes(v.storeFreeBefore),
    bytes(v.storeFreeAfter),
  ]);
  const notes = [
    ...vms
      .filter((v) => v.heldDownBy)
      .map((v) => ({
        text: `${v.vm}: found off, left down by ${v.heldDownBy} (a run that is gone): started again`,
        tone: 'warn' as Tone,
      })),
    ...vms.flatMap((v) =>
      (v.compensations ?? [])
        .filter((c) => !c.ok)
        .map((c) => ({ text: `${v.vm}: clean-up ${c.name} failed: ${c.error ?? 'unknown'}`, tone: 'bad' as Tone })),
    ),
    ...Object.values(context.restoreTests ?? {})
      .sort((a, b) => a.vm.localeCompare(b.vm))
      .map((t) => ({
        text: `boot test of ${t.vm} set ${t.stamp}: ${t.passed ? 'passed' : 'FAILED'} at ${t.testedAt} (${t.detail})`,
        tone: (t.passed ? 'neutral' : 'bad') as Tone,
      })),
    ...vms.flatMap((v) => v.deleted.map((d) => ({ text: `retention deleted ${d}`, tone: 'neutral' as Tone }))),
    ...vms.flatMap((v) =>
      (v.wouldDelete ?? []).map((d) => ({
        text: `retention would delete ${d} (dry run: kept)`,
        tone: 'neutral' as Tone,
      })),
    ),
    ...problems
      .filter((v) => v.failedStep || v.reason)
      .map((v) => ({
        text: `${v.vm}: ${v.failedStep ? `${v.status} at ${v.failedStep}` : v.status}: ${v.reason ?? ''}`,
        tone: toneOf(v.status),
        inTable: true,
      })),
  ];
  const intro = [
    outcome.state === 'completed'
      ? summary!.alreadyRunning
        ? `Weekly VM backup ${summary!.week}: nothing done, the VMs are left to ${summary!.alreadyRunning}, which was already running.`
        : `Weekly VM backup ${summary!.week} (image set ${summary!.stamp}): ${ok ? 'OK' : summary!.aborted ? `ABORTED (${summary!.aborted})` : 'FAILED'}.`
      : outcome.state === 'failed'
        ? `Weekly VM backup ${runLabel} FAILED: ${outcome.error}`
        : `Weekly VM backup ${runLabel} was CANCELLED; the VMs it had stopped were started again.`,
  ];
  const totals = !summary
    ? []
    : [
        { value: `${vms.filter((v) => v.status === 'backed-up').length}/${vms.length}`, label: 'VMs backed up' },
        { value: formatBytes(vms.reduce((s, v) => s + imageBytes(v), 0)), label: 'images' },
        { value: formatDuration(vms.reduce((s, v) => s + (v.downtimeMs ?? 0), 0)), label: 'downtime, all VMs' },
      ];
  const cards = vms.map((v, i) => {
    const r = vmRows[i]!;
    const pairs: [string, string][] = [
      ['downtime', v.downtimeMs === undefined ? '-' : formatDuration(v.downtimeMs)],
      ['image size', `${r[4]}${r[5] !== '-' ? ` (${r[5]} vs previous)` : ''}`],
      ['store copy', r[6] === '-' ? '-' : `SHA-256 ${r[6]}`],
      // No break inside one step's "name time": a phone wraps between steps only.
      ['steps', v.steps.map((s) => `${s.step} ${formatDuration(s.ms)}`.replace(/ /g, '\u00a0')).join(', ') || '-'],
      ['image area free', `${bytes(v.imageAreaFreeBefore)} → ${bytes(v.imageAreaFreeAfter)}`],
      ['store free', `${bytes(v.storeFreeBefore)} → ${bytes(v.storeFreeAfter)}`],
      ...(v.reason ? [[v.failedStep ? `failed at ${v.failedStep}` : 'note', v.reason] as [string, string]] : []),
    ];
    const status = r[2] === 'NOT RUNNING' ? 'NOT RUNNING' : v.status;
    return card(v.vm, status, v.status === status ? r[2]! : v.status, facts(pairs));
  });
  const trend = context.pastRuns
    ? trendOf(weeklyTrendPoint(runLabel, outcome), context.pastRuns, TREND_RUNS.weekly)
    : undefined;
  const outcomeWord =
    outcome.state !== 'completed'
      ? RESULT_WORD[outcomeResult(outcome)]
      : summary?.aborted
        ? 'ABORTED'
        : summary?.alreadyRunning
          ? 'SKIPPED'
          : RESULT_WORD[outcomeResult(outcome)];
  return assemble({
    job: 'weekly',
    ok,
    tone: leftToAnotherRun(outcome) ? 'neutral' : runTone(outcome),
    subject,
    title: `${outcomeWord} · weekly backup ${runLabel}`,
    intro,
    totals,
    text: {
      tables: vms.length
        ? [
            {
              headers: ['VM', 'status', 'now', 'downtime', 'image size', 'vs previous', 'store hash'],
              rows: vmRows,
            },
            { headers: ['VM', 'step', 'time'], rows: stepRows },
            { headers: ['VM', 'image area free before', 'after', 'store free before', 'after'], rows: spaceRows },
          ]
        : [],
      ...(trend && {
        trend: {
          headers: ['week', 'VM', 'status', 'image size', 'downtime'],
          rows: trend.flatMap((t) =>
            t.vms.length
              ? t.vms.map((v) => [t.label, v.vm, v.status, bytes(v.imageBytes), seconds(v.downtimeMs)])
              : [[t.label, '-', t.result, '-', '-']],
          ),
        },
      }),
    },
    html: {
      main: cards.length ? [{ title: 'VMs', content: cards.join('\n') }] : [],
      ...(trend && { trend: weeklyTrendHtml(trend, runLabel) }),
    },
    stores: context.stores ?? [],
    notes,
    link,
  });
}
