/** What one daily run found and did, per julian day. Returned by the workflow; the email report renders it. */
import type { CalendarDay } from './julian-day';
import { renderPathTemplate } from './path-template';

export type DayStatus =
  | 'copied' // something was missing or differed, and now everything matches
  | 'complete' // everything was already backed up; nothing copied
  | 'not-yet' // the source folder is missing, empty or still being written: try again on a later run
  | 'failed'; // the copy could not be completed; see error

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
  /** Backup copies that a shorter source file would have replaced; kept under `.superseded/`. */
  superseded: string[];
  verifiedBy: 'size' | 'sha256';
  durationMs: number;
}

export interface DailySummary {
  runDate: string;
  timeZone: string;
  days: DayResult[];
  /** True when every day whose data exists is fully backed up. */
  ok: boolean;
  startedAt: string;
  finishedAt: string;
}

export function dailyRunOk(days: readonly DayResult[]): boolean {
  return days.every((d) => d.status !== 'failed');
}

/** The parts of the SUPIM config a daily run needs to plan its days; nothing secret. */
export interface DailySettings {
  timeZone: string;
  daysBack: number;
  sourceTemplate: string;
  destinationRoot: string;
  verify: 'size' | 'sha256';
  heartbeatTimeoutSeconds: number;
  /** Day copies write to the backup store's disk: they run only on workers of the backup host. */
  storeTaskQueue: string;
}

/** A day's result before anything is known about it; `status` is filled in by whoever finishes it. */
export function blankDayResult(day: CalendarDay, settings: DailySettings, status: DayStatus): DayResult {
  return {
    day,
    status,
    source: renderPathTemplate(settings.sourceTemplate, day),
    destination: `${settings.destinationRoot.replace(/\/+$/, '')}/${day.label.slice(0, 4)}/${day.label.slice(5)}`,
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
