import type { OffsiteOutcome } from './offsite';
/** What one daily run found and did, per julian day. Returned by the workflow; the email report renders it. */
import type { CalendarDay } from './julian-day';
import { renderPathTemplate } from './path-template';

export type DayStatus =
  | 'copied' // something was missing or differed, and now everything matches
  | 'complete' // everything was already backed up; nothing copied
  | 'not-yet' // the source folder is missing, empty, still being written or changed during the copy: try again later
  | 'late' // not-yet, and past supim.expectedBy: the run is not OK
  | 'missing' // not-yet on its last run in the window: no later run will copy it; the run is not OK
  | 'failed'; // the copy could not be completed (see reason and failedFiles); files that could be copied were

export interface DayResult {
  day: CalendarDay;
  status: DayStatus;
  /** Why not-yet or failed, in words an operator can act on. */
  reason?: string;
  source: string;
  destination: string;
  filesInSource: number;
  bytesInSource: number;
  filesCopied: number;
  bytesCopied: number;
  /** Symlinks and special files left alone (never followed), relative paths, at most a few. */
  skipped: string[];
  skippedCount: number;
  /** Files that could not be copied (at most a few), each with why; every other file of the day was. */
  failedFiles?: { path: string; reason: string }[];
  failedCount?: number;
  /** Backup copies that a shorter source file would have replaced; kept under `.superseded/` (at most a few). */
  superseded: string[];
  /** How many copies were kept under `.superseded/` in all (`superseded` names the first few). */
  supersededCount?: number;
  verifiedBy: 'size' | 'sha256';
  durationMs: number;
  /** store.engine restic: what became of the day's snapshot in the repository (absent: not tried). */
  restic?: DayRestic;
}

/**
 * The day folder in the restic repository, after its plain copy is complete: stored (a new snapshot
 * tagged day=yyyy-ddd), unchanged (the copy found nothing to do and a snapshot of the day is there:
 * none added), skipped (another run holds the day), failed (the plain copy stands; the run is not OK).
 */
export interface DayRestic {
  status: 'stored' | 'unchanged' | 'skipped' | 'failed';
  /** Short id of the new snapshot, or of the newest one when unchanged. */
  snapshot?: string;
  /** Bytes the repository grew by (restic's data_added: after dedup and compression). */
  bytesAdded?: number;
  reason?: string;
}

export interface DailySummary {
  runDate: string;
  timeZone: string;
  days: DayResult[];
  /** True when every day whose data exists is fully backed up (off-site copies aside). */
  ok: boolean;
  /** offsite configured: the days' copies to each off-site repository (absent in older runs and without offsite). */
  offsite?: OffsiteOutcome[];
  startedAt: string;
  finishedAt: string;
}

export function dailyRunOk(days: readonly DayResult[]): boolean {
  return days.every(
    (d) => d.status !== 'failed' && d.status !== 'missing' && d.status !== 'late' && d.restic?.status !== 'failed',
  );
}

/** One line on what became of a day in the restic repository, or undefined when it was not tried. */
export function resticNote(d: DayResult): string | undefined {
  const r = d.restic;
  if (!r) return undefined;
  const label = `${d.day.label} restic`;
  if (r.status === 'stored') return `${label}: snapshot ${r.snapshot}, ${r.bytesAdded ?? 0} bytes added`;
  if (r.status === 'unchanged') return `${label}: unchanged, snapshot ${r.snapshot} kept (none added)`;
  return `${label} ${r.status}: ${r.reason ?? 'no reason given'}`;
}

/** A day the run found no data for at all (its folder absent or empty), whatever the status says. */
export function dayHasNoData(day: DayResult): boolean {
  return day.filesInSource === 0 && day.status !== 'failed';
}

/** The calendar date `days` after an ISO date (plain UTC arithmetic: dates only, no zone involved). */
function isoDatePlus(isoDate: string, days: number): string {
  const [y, m, d] = isoDate.split('-').map(Number) as [number, number, number];
  return new Date(Date.UTC(y, m - 1, d + days)).toISOString().slice(0, 10);
}

/** When `expectedBy` ("HH:MM" or "+N HH:MM") falls for a day, as local "YYYY-MM-DD HH:MM". */
export function expectedByFor(day: CalendarDay, expectedBy: string): string {
  const match = /^(?:\+(\d+) )?(\d\d:\d\d)$/.exec(expectedBy);
  if (!match) throw new Error(`not "HH:MM" or "+N HH:MM": ${expectedBy}`);
  return `${isoDatePlus(day.isoDate, Number(match[1] ?? 0))} ${match[2]}`;
}

/**
 * Escalates a day that is not there yet: `missing` on its last run in the window (nothing will copy it
 * later), `late` once past expectedBy. `localNow` is the run's clock in the configured zone, "YYYY-MM-DD HH:MM".
 */
export function escalateNotYet(
  result: DayResult,
  when: { lastInWindow: boolean; localNow: string; expectedBy?: string },
): DayResult {
  if (result.status !== 'not-yet') return result;
  if (when.lastInWindow) {
    return { ...result, status: 'missing', reason: `${result.reason ?? 'not there'}; last run in the window` };
  }
  if (when.expectedBy) {
    const due = expectedByFor(result.day, when.expectedBy);
    if (when.localNow >= due)
      return { ...result, status: 'late', reason: `${result.reason ?? 'not there'}; expected by ${due}` };
  }
  return result;
}

/** The parts of the SUPIM config a daily run needs to plan its days; nothing secret. */
export interface DailySettings {
  timeZone: string;
  daysBack: number;
  sourceTemplate: string;
  destinationRoot: string;
  verify: 'size' | 'sha256';
  /** supim.expectedBy: "HH:MM" or "+N HH:MM" after the julian day; unset: no day is ever late. */
  expectedBy?: string;
  heartbeatTimeoutSeconds: number;
  /** store.engine restic: each complete day also goes into the repository (absent in older runs). */
  resticDays?: boolean;
  /** Day copies write to the backup store's disk: they run only on workers of the backup host. */
  storeTaskQueue: string;
}

/** The day's plain folder in the backup: <destinationRoot>/<yyyy>/<ddd>. */
export function dayDestination(destinationRoot: string, day: CalendarDay): string {
  return `${destinationRoot.replace(/\/+$/, '')}/${day.label.slice(0, 4)}/${day.label.slice(5)}`;
}

/** A day's result before anything is known about it; `status` is filled in by whoever finishes it. */
export function blankDayResult(day: CalendarDay, settings: DailySettings, status: DayStatus): DayResult {
  return {
    day,
    status,
    source: renderPathTemplate(settings.sourceTemplate, day),
    destination: dayDestination(settings.destinationRoot, day),
    filesInSource: 0,
    bytesInSource: 0,
    filesCopied: 0,
    bytesCopied: 0,
    skipped: [],
    skippedCount: 0,
    superseded: [],
    verifiedBy: settings.verify,
    durationMs: 0,
  };
}
