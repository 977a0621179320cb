/** The email of a restore, a day restore or a restore test, as data (see weekly-report.ts for the weekly one). */
import { formatBytes, formatDuration } from './format';
import { escapeHtml } from './report-html';
import type { Report } from './report-layout';
import {
  consoleQuote,
  skippedLines,
  type DayRestoreResult,
  type RestoreTestSummary,
  type RestoreVmResult,
} from './restore';
import { runUrl, type RunLink } from './run-outcome';

export type RestoreReportRequest = { link: Omit<RunLink, 'uiBaseUrl'> & { uiBaseUrl?: string } } & (
  | { kind: 'vm'; result: RestoreVmResult }
  | { kind: 'day'; result: DayRestoreResult }
  | { kind: 'test'; result: RestoreTestSummary }
);

const PREFIX = '[cluster-backup]';

function vmLines(r: RestoreVmResult): { subject: string; lines: string[] } {
  const what = r.request.mode === 'as' ? `${r.vm} as ${r.request.newName ?? '?'}` : `${r.vm} in place (--replace)`;
  const verdict = r.ok ? 'OK' : r.aborted ? 'ABORTED' : 'FAILED';
  const lines = [
    `Restore of ${what} from set ${r.stamp ?? '?'}: ${verdict}${r.reason ? ` - ${r.reason}` : ''}.`,
    ...(r.failedStep ? [`Failed at: ${r.failedStep}.`] : []),
    ...(r.putBack ? ['The original disks were put back in place.'] : []),
    ...(r.compensations ?? []).filter((c) => !c.ok).map((c) => `Could not ${c.name}: ${c.error ?? '?'}.`),
    ...r.pushed.map(
      (p) =>
        `${p.disk}: ${formatBytes(p.bytes)} pushed to ${p.path}, SHA-256 on arrival ${p.sha256} = manifest` +
        (p.resumedAt ? ` (resumed at ${formatBytes(p.resumedAt)})` : ''),
    ),
    ...r.keptAs.map((k) => `Previous disk kept as ${k} (never deleted by cluster-backup).`),
    ...(r.leftOut ?? []).map((d) => `Left out of the copy (tied to the original's host): ${d}.`),
    ...(r.domain ? [`Domain ${r.domain}: ${r.state ?? '?'}.`] : []),
    `Steps: ${r.steps.map((s) => `${s.step} ${formatDuration(s.ms)}`).join(', ') || '-'}.`,
  ];
  return { subject: `${PREFIX} ${verdict} restore ${what}`, lines };
}

function dayLines(r: DayRestoreResult): { subject: string; lines: string[] } {
  const verdict = r.ok ? 'OK' : 'INCOMPLETE';
  return {
    subject: `${PREFIX} ${verdict} restore day ${r.day} to ${r.host}`,
    lines: [
      `Restore of SUPIM day ${r.day} from ${r.from} to ${r.host}:${r.to}: ${verdict}${r.reason ? ` - ${r.reason}` : ''}.`,
      `${r.filesRestored} of ${r.filesInBackup} file(s) restored (${formatBytes(r.bytesRestored)}), each SHA-256 checked on arrival.`,
      ...r.existing.map((f) => `left alone (already there): ${f}`),
      ...r.overwritten.map((f) => `overwritten: ${f}`),
      ...skippedLines(r),
    ],
  };
}

function testLines(r: RestoreTestSummary): { subject: string; lines: string[] } {
  const t = r.result;
  if (!t)
    return { subject: `${PREFIX} restore test: nothing to test`, lines: ['No VM has a verified set in the store.'] };
  const verdict = t.passed ? 'PASSED' : 'FAILED';
  return {
    subject: `${PREFIX} restore test ${verdict}: ${t.vm} set ${t.stamp}`,
    lines: [
      `Restore test of ${t.vm}, set ${t.stamp}: ${verdict} - ${t.detail}.`,
      ...consoleQuote(t, ''),
      'The set was pushed to the hypervisor, verified, and booted as a throw-away domain (no network) on an overlay; the domain and overlay are removed.',
    ],
  };
}

export function restoreReport(request: RestoreReportRequest): Report {
  const { subject, lines } =
    request.kind === 'vm'
      ? vmLines(request.result)
      : request.kind === 'day'
        ? dayLines(request.result)
        : testLines(request.result);
  const ok = request.result.ok;
  const url = runUrl(request.link);
  const where = `Workflow ${request.link.workflowId} (run ${request.link.runId}, namespace ${request.link.namespace})`;
  return {
    // Day restores concern the SUPIM data's people; VM restores and tests the weekly job's.
    job: request.kind === 'day' ? 'daily' : 'weekly',
    ok,
    subject,
    text: [...lines, '', url ? `${where}: ${url}` : where].join('\n'),
    html: [
      '<html><body>',
      ...lines.map((l) => `<p>${escapeHtml(l)}</p>`),
      `<p>${url ? `<a href="${escapeHtml(url)}">${escapeHtml(where)}</a>` : escapeHtml(where)}</p>`,
      '</body></html>',
    ].join('\n'),
  };
}
