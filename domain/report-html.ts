/**
 * The pieces of the HTML report. Mail clients drop <style> blocks, scripts and remote images, so every
 * piece carries inline styles only and charts are table cells of a given height; widths are fluid up to
 * a column a phone shows whole. Every value passes through escapeHtml.
 */
import { formatBytes } from './format';
import { freeFraction, LOW_FREE_FRACTION, type StoreUsage } from './store-usage';

export function escapeHtml(value: unknown): string {
  return String(value).replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!,
  );
}

export type Tone = 'good' | 'warn' | 'bad' | 'neutral';

/** Green, amber, red, grey: dark enough for white text (WCAG AA at the sizes used). */
export const TONE_COLOUR: Record<Tone, string> = {
  good: '#1b7f3b',
  warn: '#a35200',
  bad: '#c62828',
  neutral: '#5f6368',
};

const GOOD = new Set(['ok', 'copied', 'complete', 'backed-up', 'running', 'match']);
const WARN = new Set(['not-yet', 'skipped', 'incomplete', 'off (as found)', 'untouched']);
const NEUTRAL = new Set(['cancelled', '-']);

/** Tone of a status word (a day's, a VM's, a run's). Anything unknown counts as bad: it gets looked at. */
export function toneOf(status: string): Tone {
  if (GOOD.has(status)) return 'good';
  if (WARN.has(status)) return 'warn';
  if (NEUTRAL.has(status)) return 'neutral';
  return 'bad';
}

const FONT = 'font-family:-apple-system,BlinkMacSystemFont,Segoe UI,Roboto,Helvetica,Arial,sans-serif';
const MUTED = '#5f6368';

export function page(body: string[]): string {
  return [
    `<!DOCTYPE html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"></head>`,
    `<body style="margin:0;padding:0;background:#f1f3f4">`,
    `<div style="max-width:640px;margin:0 auto;padding:8px;${FONT};font-size:14px;line-height:1.4;color:#202124">`,
    `<div style="background:#ffffff;border:1px solid #dadce0;border-radius:6px;overflow:hidden">`,
    ...body,
    `</div></div></body></html>`,
  ].join('\n');
}

export function headline(tone: Tone, title: string, lines: string[]): string {
  return [
    `<div style="background:${TONE_COLOUR[tone]};color:#ffffff;padding:12px 16px;font-size:18px;font-weight:bold">${escapeHtml(title)}</div>`,
    ...lines.map((l) => `<p style="margin:12px 16px">${escapeHtml(l)}</p>`),
  ].join('\n');
}

export function section(title: string, content: string): string {
  return [
    `<div style="padding:4px 16px 12px">`,
    `<div style="font-size:13px;font-weight:bold;text-transform:uppercase;letter-spacing:0.04em;color:${MUTED};margin:8px 0 6px">${escapeHtml(title)}</div>`,
    content,
    `</div>`,
  ].join('\n');
}

export function pill(status: string): string {
  return `<span style="display:inline-block;padding:1px 8px;border-radius:10px;background:${TONE_COLOUR[toneOf(status)]};color:#ffffff;font-size:12px;font-weight:bold;white-space:nowrap">${escapeHtml(status)}</span>`;
}

/** Big numbers side by side: bytes, files, downtime. */
export function tiles(items: { value: string; label: string }[]): string {
  const width = Math.floor(100 / Math.max(1, items.length));
  const cells = items.map(
    (t) =>
      `<td width="${width}%" style="padding:4px;text-align:center;vertical-align:top"><div style="font-size:20px;font-weight:bold;white-space:nowrap">${escapeHtml(t.value)}</div><div style="font-size:12px;color:${MUTED}">${escapeHtml(t.label)}</div></td>`,
  );
  return `<table role="presentation" width="100%" cellpadding="0" cellspacing="0" style="border-collapse:collapse;table-layout:fixed"><tr>${cells.join('')}</tr></table>`;
}

/** A table whose first column may carry a status pill; notes go on a full-width line under their row. */
export interface HtmlRow {
  /** sub: a second, smaller line (e.g. the date under a julian day). */
  cells: { text: string; sub?: string; status?: boolean; align?: 'right' }[];
  note?: { text: string; tone: Tone };
}

export function rowsTable(headers: string[], rows: HtmlRow[]): string {
  const cell = 'padding:6px 4px;border-bottom:1px solid #eceff1;vertical-align:top';
  const head = headers
    .map(
      (h) =>
        `<th align="left" style="padding:4px;font-size:12px;color:${MUTED};border-bottom:2px solid #dadce0">${escapeHtml(h)}</th>`,
    )
    .join('');
  const body = rows.flatMap((r) => {
    const main = `<tr>${r.cells
      .map(
        (c) =>
          `<td style="${cell}${c.align ? ';text-align:right;white-space:nowrap' : ''}">${c.status ? pill(c.text) : `<span style="white-space:nowrap">${escapeHtml(c.text)}</span>`}${c.sub ? `<br><span style="font-size:11px;color:${MUTED};white-space:nowrap">${escapeHtml(c.sub)}</span>` : ''}</td>`,
      )
      .join('')}</tr>`;
    if (!r.note) return [main];
    const colour = r.note.tone === 'bad' ? TONE_COLOUR.bad : MUTED;
    return [
      main,
      `<tr><td colspan="${r.cells.length}" style="padding:0 4px 6px;border-bottom:1px solid #eceff1;font-size:12px;color:${colour};word-break:break-word">${escapeHtml(r.note.text)}</td></tr>`,
    ];
  });
  return `<table width="100%" cellpadding="0" cellspacing="0" style="border-collapse:collapse;font-size:13px"><tr>${head}</tr>\n${body.join('\n')}</table>`;
}

/** Label / value pairs, for a VM's card. */
export function facts(pairs: [string, string][]): string {
  return `<table role="presentation" width="100%" cellpadding="0" cellspacing="0" style="border-collapse:collapse;font-size:13px">${pairs
    .map(
      ([k, v]) =>
        `<tr><td width="38%" style="padding:2px 8px 2px 0;color:${MUTED};vertical-align:top">${escapeHtml(k)}</td><td style="padding:2px 0;word-break:break-word">${escapeHtml(v)}</td></tr>`,
    )
    .join('')}</table>`;
}

export function card(title: string, status: string, subtitle: string, content: string): string {
  return [
    `<div style="border:1px solid #dadce0;border-left:4px solid ${TONE_COLOUR[toneOf(status)]};border-radius:4px;padding:8px 10px;margin:0 0 10px">`,
    `<div style="margin-bottom:4px"><b style="font-size:15px;word-break:break-all">${escapeHtml(title)}</b> ${pill(status)} <span style="color:${MUTED};font-size:12px">${escapeHtml(subtitle)}</span></div>`,
    content,
    `</div>`,
  ].join('\n');
}

export function notesList(notes: { text: string; tone: Tone }[]): string {
  return `<ul style="margin:0;padding-left:18px;font-size:13px">${notes
    .map(
      (n) =>
        `<li style="color:${n.tone === 'bad' ? TONE_COLOUR.bad : '#202124'};word-break:break-word">${escapeHtml(n.text)}</li>`,
    )
    .join('')}</ul>`;
}

export interface Bar {
  /** Shown under the bar: short (a day number, a week). */
  label: string;
  value: number | undefined;
  tone: Tone;
  /** The whole story of the bar, as a tooltip where the client shows one. */
  title: string;
  /** The run this report is about: its label is bold. */
  current?: boolean;
}

const CHART_PX = 56;

/**
 * Vertical bars scaled to the largest value, as table cells: no image, so nothing is blocked or fetched.
 * A run without a value gets a short striped stub in its tone, so a failure is never an empty gap.
 */
export function barChart(caption: string, bars: Bar[], format: (n: number) => string): string {
  const max = Math.max(0, ...bars.map((b) => b.value ?? 0));
  const cells = bars.map((b) => {
    const px = b.value === undefined ? 4 : max > 0 ? Math.max(2, Math.round((b.value / max) * CHART_PX)) : 2;
    const fill =
      b.value === undefined
        ? `background:repeating-linear-gradient(45deg,${TONE_COLOUR[b.tone]},${TONE_COLOUR[b.tone]} 2px,#ffffff 2px,#ffffff 4px)`
        : `background:${TONE_COLOUR[b.tone]}`;
    return `<td valign="bottom" style="padding:0 1px;height:${CHART_PX}px;vertical-align:bottom" title="${escapeHtml(b.title)}"><div style="height:${px}px;${fill};border-radius:2px 2px 0 0;font-size:0;line-height:0">&nbsp;</div></td>`;
  });
  const labels = bars.map(
    (b) =>
      `<td style="padding:2px 0 0;font-size:10px;color:${b.current ? '#202124' : MUTED};font-weight:${b.current ? 'bold' : 'normal'};text-align:center;white-space:nowrap;overflow:hidden">${escapeHtml(b.label)}</td>`,
  );
  return [
    `<div style="font-size:12px;color:${MUTED};margin:6px 0 2px">${escapeHtml(caption)}${max > 0 ? ` (highest ${escapeHtml(format(max))})` : ''}</div>`,
    `<table role="presentation" width="100%" cellpadding="0" cellspacing="0" style="border-collapse:collapse;table-layout:fixed;border-bottom:1px solid #bdc1c6"><tr>${cells.join('')}</tr></table>`,
    `<table role="presentation" width="100%" cellpadding="0" cellspacing="0" style="border-collapse:collapse;table-layout:fixed"><tr>${labels.join('')}</tr></table>`,
  ].join('\n');
}

const SEGMENT = { kept: '#1a73e8', used: '#9aa0a6', free: '#e8eaed' };

/** Used (the image sets retention keeps, and the rest) and free space of a store, as one horizontal bar. */
export function usageBar(usage: StoreUsage): string {
  const total = usage.totalBytes || 1;
  const used = Math.max(0, usage.totalBytes - usage.freeBytes);
  const kept = Math.min(used, usage.imageSetBytes ?? 0);
  const low = freeFraction(usage) < LOW_FREE_FRACTION;
  const hasSets = usage.imageSetBytes !== undefined;
  const parts = [
    ...(hasSets
      ? [{ bytes: kept, colour: SEGMENT.kept, label: `image sets retention keeps (${usage.imageSets ?? 0})` }]
      : []),
    { bytes: used - kept, colour: SEGMENT.used, label: hasSets ? 'other data' : 'used' },
    { bytes: usage.freeBytes, colour: low ? TONE_COLOUR.bad : SEGMENT.free, label: 'free' },
  ].filter((p) => p.bytes > 0);
  const cells = parts.map(
    (p) =>
      `<td width="${Math.max(1, Math.round((p.bytes / total) * 100))}%" style="height:14px;background:${p.colour};font-size:0;line-height:0">&nbsp;</td>`,
  );
  const legend = parts.map(
    (p) =>
      `<span style="white-space:nowrap;margin-right:10px"><span style="display:inline-block;width:10px;height:10px;background:${p.colour};border:1px solid #bdc1c6;vertical-align:middle"></span> ${escapeHtml(p.label)} ${escapeHtml(formatBytes(p.bytes))}</span>`,
  );
  const percentFree = (freeFraction(usage) * 100).toFixed(0);
  return [
    `<div style="font-size:13px;margin:6px 0 3px"><b>${escapeHtml(usage.stores.join(' + '))}</b> <span style="color:${MUTED};word-break:break-all">${escapeHtml(usage.path)}</span><br>${escapeHtml(formatBytes(usage.freeBytes))} free of ${escapeHtml(formatBytes(usage.totalBytes))} <span style="color:${low ? TONE_COLOUR.bad : MUTED};font-weight:${low ? 'bold' : 'normal'}">(${percentFree}% free)</span></div>`,
    `<table role="presentation" width="100%" cellpadding="0" cellspacing="0" style="border-collapse:collapse;table-layout:fixed;border:1px solid #bdc1c6"><tr>${cells.join('')}</tr></table>`,
    `<div style="font-size:12px;color:${MUTED};margin-top:3px">${legend.join(' ')}</div>`,
  ].join('\n');
}

export function footer(content: string): string {
  return `<div style="padding:8px 16px 12px;font-size:12px;color:${MUTED};border-top:1px solid #eceff1;word-break:break-all">${content}</div>`;
}
