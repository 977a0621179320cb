/**
 * The email report of a run, as data: subject, plain text and HTML. Pure, so that what an operator reads
 * is tested as units; the mailer only delivers it. Every value is escaped in the HTML.
 */
import type { DailySummary } from './daily-summary';
import { formatBytes, formatDuration } from './format';
import type { Job } from './jobs';
import type { VmResult, WeeklySummary } from './weekly-summary';

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

export interface Report {
  job: Job;
  ok: boolean;
  subject: string;
  text: string;
  html: string;
}

const PREFIX = '[cluster-backup]';

export function escapeHtml(value: unknown): string {
  return String(value).replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!,
  );
}

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

function htmlTable({ headers, rows }: Table): string {
  const head = headers.map((h) => `<th align="left">${escapeHtml(h)}</th>`).join('');
  const body = rows.map((r) => `<tr>${r.map((c) => `<td>${escapeHtml(c)}</td>`).join('')}</tr>`).join('\n');
  return `<table border="1" cellpadding="4" cellspacing="0"><tr>${head}</tr>\n${body}</table>`;
}

function assemble(
  job: Report['job'],
  ok: boolean,
  subject: string,
  intro: string[],
  tables: Table[],
  notes: string[],
  link: RunLink,
): Report {
  const url = runUrl(link);
  const where = `Workflow ${link.workflowId} (run ${link.runId}, namespace ${link.namespace})`;
  const text = [
    intro.join('\n'),
    ...tables.map(textTable),
    notes.length ? notes.join('\n') : '',
    url ? `${where}: ${url}` : where,
  ]
    .filter(Boolean)
    .join('\n\n');
  const html = [
    `<html><body>`,
    ...intro.map((p) => `<p>${escapeHtml(p)}</p>`),
    ...tables.map(htmlTable),
    ...(notes.length ? [`<ul>${notes.map((n) => `<li>${escapeHtml(n)}</li>`).join('')}</ul>`] : []),
    `<p>${url ? `<a href="${escapeHtml(url)}">${escapeHtml(where)}</a>` : escapeHtml(where)}</p>`,
    `</body></html>`,
  ].join('\n');
  return { job, ok, subject, text, html };
}

export function dailyReport(outcome: RunOutcome<DailySummary>, link: RunLink, runLabel: string): Report {
  const summary = outcome.summary;
  const days = summary?.days ?? [];
  const done = days.filter((d) => d.status === 'copied' || d.status === 'complete').length;
  const notYet = days.filter((d) => d.status === 'not-yet').length;
  const failed = days.filter((d) => d.status === 'failed');
  const ok = outcome.state === 'completed' && outcome.summary.ok;
  let subject: string;
  if (outcome.state === 'cancelled') subject = `${PREFIX} CANCELLED daily ${runLabel}`;
  else if (outcome.state === 'failed') subject = `${PREFIX} FAILED daily ${runLabel}: ${outcome.error}`;
  else if (!ok)
    subject = `${PREFIX} FAILED daily ${runLabel}: ${failed.map((d) => `${d.day.label} ${d.reason ?? 'failed'}`).join('; ')}`;
  else subject = `${PREFIX} OK daily ${runLabel} (${done}/${days.length} days${notYet ? `, ${notYet} not yet` : ''})`;

  const rows = days.map((d) => [
    d.day.label,
    d.day.isoDate,
    d.status,
    `${d.filesCopied}/${d.filesInSource}`,
    bytes(d.bytesCopied),
    seconds(d.durationMs),
    d.reason ?? '',
  ]);
  const notes = [
    ...days.flatMap((d) => d.superseded.map((s) => `${d.day.label}: kept the longer old copy of ${s}`)),
    ...days
      .filter((d) => d.skippedCount)
      .map((d) => `${d.day.label}: ${d.skippedCount} symlink(s)/special file(s) not followed`),
  ];
  const intro = [
    outcome.state === 'completed'
      ? `Daily SUPIM-DAVS backup for ${summary!.runDate} (${summary!.timeZone}): ${ok ? 'OK' : 'FAILED'}.`
      : outcome.state === 'failed'
        ? `Daily SUPIM-DAVS backup ${runLabel} FAILED: ${outcome.error}`
        : `Daily SUPIM-DAVS backup ${runLabel} was CANCELLED.`,
  ];
  const table = { headers: ['julian day', 'date', 'status', 'files copied', 'bytes', 'duration', 'note'], rows };
  return assemble('daily', ok, subject, intro, days.length ? [table] : [], notes, link);
}

function vmState(vm: VmResult): string {
  if (vm.runningAtEnd === true) return 'running';
  if (vm.runningAtEnd === false) return 'NOT RUNNING';
  if (vm.wasRunning === false) return 'off (as found)';
  return 'untouched';
}

export function weeklyReport(outcome: RunOutcome<WeeklySummary>, link: RunLink, runLabel: string): Report {
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
  else if (!ok)
    subject = `${PREFIX} FAILED weekly ${runLabel}: ${firstProblem}${problems.length > 1 ? ` (+${problems.length - 1} more)` : ''}`;
  else subject = `${PREFIX} OK weekly ${runLabel} (${vms.length}/${vms.length} VMs)`;

  const vmRows = vms.map((v) => {
    const size = v.images.reduce((s, i) => s + i.bytes, 0);
    const change =
      v.previousImageBytes && size
        ? `${(((size - v.previousImageBytes) / v.previousImageBytes) * 100).toFixed(1)}%`
        : '-';
    const hashes = v.stored.length
      ? v.stored.every((s, i) => s.sha256 === v.images[i]?.sha256)
        ? 'match'
        : 'MISMATCH'
      : '-';
    return [
      v.vm,
      v.status,
      vmState(v),
      seconds(v.downtimeMs),
      v.images.length ? bytes(size) : '-',
      change,
      hashes,
      v.reason ?? '',
    ];
  });
  const stepRows = vms.flatMap((v) => v.steps.map((s) => [v.vm, s.step, seconds(s.ms)]));
  const spaceRows = vms.map((v) => [
    v.vm,
    bytes(v.imageAreaFreeBefore),
    bytes(v.imageAreaFreeAfter),
    bytes(v.storeFreeBefore),
    bytes(v.storeFreeAfter),
  ]);
  const notes = [
    ...vms.flatMap((v) => v.deleted.map((d) => `retention deleted ${d}`)),
    ...vms.flatMap((v) => (v.wouldDelete ?? []).map((d) => `retention would delete ${d} (dry run: kept)`)),
    ...problems.filter((v) => v.failedStep).map((v) => `${v.vm}: failed at ${v.failedStep}: ${v.reason ?? ''}`),
  ];
  const intro = [
    outcome.state === 'completed'
      ? `Weekly VM backup ${summary!.week} (image set ${summary!.stamp}): ${ok ? 'OK' : summary!.aborted ? `ABORTED (${summary!.aborted})` : 'FAILED'}.`
      : outcome.state === 'failed'
        ? `Weekly VM backup ${runLabel} FAILED: ${outcome.error}`
        : `Weekly VM backup ${runLabel} was CANCELLED; the VMs it had stopped were started again.`,
  ];
  const tables: Table[] = vms.length
    ? [
        {
          headers: ['VM', 'status', 'now', 'downtime', 'image size', 'vs previous', 'store hash', 'note'],
          rows: vmRows,
        },
        { headers: ['VM', 'step', 'time'], rows: stepRows },
        { headers: ['VM', 'image area free before', 'after', 'store free before', 'after'], rows: spaceRows },
      ]
    : [];
  return assemble('weekly', ok, subject, intro, tables, notes, link);
}
