/**
 * The recent history a report draws: one point per earlier run, built from that run's outcome (the same
 * data its own report had), so the current run and the past ones are measured alike.
 */
import type { DailySummary } from './daily-summary';
import type { Job } from './jobs';
import type { RunOutcome } from './run-outcome';
import type { BackupResult } from './search-attributes';
import type { VmStatus, WeeklySummary } from './weekly-summary';

/** Runs a report shows: two weeks of daily runs, two months of weekly ones. */
export const TREND_RUNS: Record<Job, number> = { daily: 14, weekly: 8 };

/** A finished run as the search attribute BackupResult names it (incomplete: finished, not all backed up). */
export function outcomeResult(outcome: RunOutcome<{ ok: boolean }>): Exclude<BackupResult, 'running'> {
  return outcome.state === 'completed' ? (outcome.summary.ok ? 'ok' : 'incomplete') : outcome.state;
}

/** A weekly run that found another one already at work and left the VMs to it: it did nothing, good or bad. */
export function leftToAnotherRun(outcome: RunOutcome<object>): boolean {
  return Boolean(outcome.summary && 'alreadyRunning' in outcome.summary && outcome.summary.alreadyRunning);
}

export interface DailyTrendPoint {
  /** The run's julian day (2026-331). */
  label: string;
  result: Exclude<BackupResult, 'running'>;
  bytesCopied: number;
  filesCopied: number;
}

export interface VmTrendPoint {
  vm: string;
  status: VmStatus;
  imageBytes?: number;
  downtimeMs?: number;
}

export interface WeeklyTrendPoint {
  /** The run's ISO week (2026-W48). */
  label: string;
  result: Exclude<BackupResult, 'running'>;
  vms: VmTrendPoint[];
}

export function dailyTrendPoint(label: string, outcome: RunOutcome<DailySummary>): DailyTrendPoint {
  const days = outcome.summary?.days ?? [];
  return {
    label,
    result: outcomeResult(outcome),
    bytesCopied: days.reduce((sum, d) => sum + d.bytesCopied, 0),
    filesCopied: days.reduce((sum, d) => sum + d.filesCopied, 0),
  };
}

export function weeklyTrendPoint(label: string, outcome: RunOutcome<WeeklySummary>): WeeklyTrendPoint {
  return {
    label,
    result: outcomeResult(outcome),
    vms: (outcome.summary?.vms ?? []).map((v) => ({
      vm: v.vm,
      status: v.status,
      ...(v.images.length ? { imageBytes: v.images.reduce((sum, i) => sum + i.bytes, 0) } : {}),
      ...(v.downtimeMs !== undefined ? { downtimeMs: v.downtimeMs } : {}),
    })),
  };
}

/**
 * The points to draw, oldest first: the current run last, then per period only its newest run (a retried
 * or manual run of the same day replaces the earlier one), at most `limit`.
 */
export function trendOf<P extends { label: string }>(current: P, pastNewestFirst: readonly P[], limit: number): P[] {
  const seen = new Set([current.label]);
  const points = [current];
  for (const point of pastNewestFirst) {
    if (points.length >= limit) break;
    if (seen.has(point.label)) continue;
    seen.add(point.label);
    points.push(point);
  }
  return points.sort((a, b) => a.label.localeCompare(b.label));
}
