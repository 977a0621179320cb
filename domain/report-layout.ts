/**
 * What the daily and the weekly report share: the report as data (subject, plain text, HTML), the context
 * shown beyond the run, and how a report's parts are rendered twice, as aligned text and inline-styled HTML.
 * Every value is escaped in the HTML.
 */
import { formatBytes, formatDuration } from './format';
import type { Job } from './jobs';
import {
  escapeHtml,
  footer,
  headline,
  notesList,
  page,
  section,
  tiles,
  toneOf,
  usageBar,
  type Tone,
} from './report-html';
import { outcomeResult } from './report-trend';
import type { RestoreTestLog } from './restore';
import { runUrl, type RunLink, type RunOutcome } from './run-outcome';
import { freeFraction, type StoreUsage } from './store-usage';

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

export const PREFIX = '[cluster-backup]';

export const bytes = (n: number | undefined) => (n === undefined ? '-' : formatBytes(n));
export const seconds = (ms: number | undefined) => (ms === undefined ? '-' : formatDuration(ms));

export interface Table {
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
export interface Parts {
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

export function assemble(p: Parts): Report {
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

export function runTone(outcome: RunOutcome<{ ok: boolean }>): Tone {
  return toneOf(outcomeResult(outcome) === 'incomplete' ? 'failed' : outcomeResult(outcome));
}

export const RESULT_WORD = { ok: 'OK', incomplete: 'FAILED', failed: 'FAILED', cancelled: 'CANCELLED' } as const;
