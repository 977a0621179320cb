/** The weekly run's email report: one card per VM, its steps and space, the last weeks, boot tests, the store. */
import { formatBytes, formatDuration } from './format';
import { offsiteNotes, offsiteSubjectNote } from './offsite';
import { barChart, card, escapeHtml, facts, toneOf, type Tone } from './report-html';
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
import {
  leftToAnotherRun,
  outcomeResult,
  TREND_RUNS,
  trendOf,
  weeklyTrendPoint,
  type WeeklyTrendPoint,
} from './report-trend';
import type { RunLink, RunOutcome } from './run-outcome';
import type { ResticImage, VmResult, WeeklySummary } from './weekly-summary';

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
  // Several hypervisors: the VMs grouped by host, each named hypervisor/vm.
  const hosts = summary?.hosts ?? [];
  const several = hosts.length > 1;
  const order = new Map(hosts.map((h, i) => [h.hypervisor, i]));
  const vms = [...(summary?.vms ?? [])].sort(
    (x, y) => (order.get(x.hypervisor ?? '') ?? -1) - (order.get(y.hypervisor ?? '') ?? -1),
  );
  const name = (v: VmResult) => (several && v.hypervisor ? `${v.hypervisor}/${v.vm}` : v.vm);
  const ok = outcome.state === 'completed' && outcome.summary.ok;
  const problems = vms.filter((v) => v.status !== 'backed-up');
  const firstProblem =
    problems[0] &&
    `${name(problems[0])} ${problems[0].failedStep ? `${problems[0].failedStep} ` : ''}${problems[0].status}`;
  let subject: string;
  if (outcome.state === 'cancelled') subject = `${PREFIX} CANCELLED weekly ${runLabel}`;
  else if (outcome.state === 'failed') subject = `${PREFIX} FAILED weekly ${runLabel}: ${outcome.error}`;
  else if (summary?.aborted) subject = `${PREFIX} ABORTED weekly ${runLabel}: ${summary.aborted}`;
  else if (summary?.alreadyRunning)
    subject = `${PREFIX} SKIPPED weekly ${runLabel}: ${summary.alreadyRunning} was already running`;
  else if (!ok)
    subject = `${PREFIX} FAILED weekly ${runLabel}: ${firstProblem}${problems.length > 1 ? ` (+${problems.length - 1} more)` : ''}`;
  else
    subject = `${PREFIX} OK weekly ${runLabel} (${vms.length}/${vms.length} VMs)${offsiteSubjectNote(summary?.offsite)}`;

  /** store.engine restic: what the set added to the repository, of its raw bytes (the rest deduplicated). */
  const repositoryAdded = (v: VmResult): [string, string][] => {
    const stored = v.stored.filter((s): s is ResticImage => typeof (s as ResticImage).dataAdded === 'number');
    if (!stored.length) return [];
    const [added, raw] = stored.reduce(([a, r], s) => [a + s.dataAdded, r + s.bytes], [0, 0]);
    return [
      ['added to repository', `${bytes(added)} of ${bytes(raw)} raw (${((100 * added) / (raw || 1)).toFixed(1)} %)`],
    ];
  };
  const imageBytes = (v: VmResult) => v.images.reduce((s, i) => s + i.bytes, 0);
  const change = (v: VmResult) =>
    v.previousImageBytes && imageBytes(v)
      ? `${(((imageBytes(v) - v.previousImageBytes) / v.previousImageBytes) * 100).toFixed(1)}%`
      : '-';
  const hashes = (v: VmResult) =>
    v.stored.length ? (v.stored.every((s, i) => s.sha256 === v.images[i]?.sha256) ? 'match' : 'MISMATCH') : '-';
  const vmRows = vms.map((v) => [
    name(v),
    v.status,
    vmState(v),
    seconds(v.downtimeMs),
    v.images.length ? bytes(imageBytes(v)) : '-',
    change(v),
    hashes(v),
  ]);
  const stepRows = vms.flatMap((v) => v.steps.map((s) => [name(v), s.step, seconds(s.ms)]));
  const spaceRows = vms.map((v) => [
    name(v),
    bytes(v.imageAreaFreeBefore),
    bytes(v.imageAreaFreeAfter),
    bytes(v.storeFreeBefore),
    bytes(v.storeFreeAfter),
  ]);
  const notes = [
    ...hosts
      .filter((h) => h.unreachable || h.error)
      .map((h) => ({
        text: `hypervisor ${h.hypervisor}: ${h.unreachable ? `unreachable, its VMs untouched: ${h.unreachable}` : `its run failed: ${h.error}`}`,
        tone: 'bad' as Tone,
      })),
    ...(several
      ? hosts.map((h) => ({
          text: `hypervisor ${h.hypervisor}: ${vms.filter((v) => v.hypervisor === h.hypervisor).length} VM(s), ${h.startedAt ?? '?'} to ${h.finishedAt ?? '?'} (${h.workflowId})`,
          tone: 'neutral' as Tone,
        }))
      : []),
    ...vms
      .filter((v) => v.heldDownBy)
      .map((v) => ({
        text: `${name(v)}: found off, left down by ${v.heldDownBy} (a run that is gone): started again`,
        tone: 'warn' as Tone,
      })),
    ...vms.flatMap((v) =>
      (v.compensations ?? [])
        .filter((c) => !c.ok)
        .map((c) => ({ text: `${name(v)}: clean-up ${c.name} failed: ${c.error ?? 'unknown'}`, tone: 'bad' as Tone })),
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
        text: `${name(v)}: ${v.failedStep ? `${v.status} at ${v.failedStep}` : v.status}: ${v.reason ?? ''}`,
        tone: toneOf(v.status),
        inTable: true,
      })),
    ...offsiteNotes(summary?.offsite, formatBytes),
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
      ...repositoryAdded(v),
      // No break inside one step's "name time": a phone wraps between steps only.
      ['steps', v.steps.map((s) => `${s.step} ${formatDuration(s.ms)}`.replace(/ /g, '\u00a0')).join(', ') || '-'],
      ['image area free', `${bytes(v.imageAreaFreeBefore)} → ${bytes(v.imageAreaFreeAfter)}`],
      ['store free', `${bytes(v.storeFreeBefore)} → ${bytes(v.storeFreeAfter)}`],
      ...(v.reason ? [[v.failedStep ? `failed at ${v.failedStep}` : 'note', v.reason] as [string, string]] : []),
    ];
    const status = r[2] === 'NOT RUNNING' ? 'NOT RUNNING' : v.status;
    return card(name(v), status, v.status === status ? r[2]! : v.status, facts(pairs));
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
