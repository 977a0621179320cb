/**
 * Which image sets to keep: the same rule for the hypervisor's image area and the backup store.
 * Pure and deterministic, so it is tested on fake histories and explained by what it returns.
 */
import { isoWeekLabel } from './weekly-summary';

export interface RetentionPolicy {
  /** The newest N verified sets. */
  keepLast: number;
  /** The newest verified set of each of the last N ISO weeks that have one. */
  keepWeekly: number;
  /** The newest verified set of each of the last N calendar months that have one. */
  keepMonthly: number;
}

export interface StoredSet {
  /** yyyymmddThhmmssZ */
  stamp: string;
  verified: boolean;
}

export interface RetentionPlan {
  keep: { stamp: string; why: string[] }[];
  delete: { stamp: string; why: string }[];
}

function stampDate(stamp: string): string {
  return `${stamp.slice(0, 4)}-${stamp.slice(4, 6)}-${stamp.slice(6, 8)}`;
}

/**
 * Never deletes the newest verified set, anything newer than it (a run under way, or one that failed and
 * is kept for a look), or `protect`. Unverified sets older than the newest verified one are leftovers of
 * failed runs and go.
 */
export function planRetention(sets: readonly StoredSet[], policy: RetentionPolicy, protect?: string): RetentionPlan {
  const sorted = [...sets].sort((a, b) => b.stamp.localeCompare(a.stamp)); // newest first
  const verified = sorted.filter((s) => s.verified);
  const newestVerified = verified[0]?.stamp;
  const reasons = new Map<string, string[]>();
  const why = (stamp: string, reason: string) => reasons.set(stamp, [...(reasons.get(stamp) ?? []), reason]);

  verified
    .slice(0, Math.max(1, policy.keepLast))
    .forEach((s, i) => why(s.stamp, i === 0 ? 'newest verified' : `last ${policy.keepLast}`));
  for (const [label, period, count] of [
    ['weekly', (s: StoredSet) => isoWeekLabel(stampDate(s.stamp)), policy.keepWeekly],
    ['monthly', (s: StoredSet) => stampDate(s.stamp).slice(0, 7), policy.keepMonthly],
  ] as const) {
    const seen = new Set<string>();
    for (const s of verified) {
      const key = period(s);
      if (seen.has(key)) continue;
      if (seen.size >= count) break;
      seen.add(key);
      why(s.stamp, `${label} ${key}`);
    }
  }

  const plan: RetentionPlan = { keep: [], delete: [] };
  for (const s of sorted) {
    const kept = reasons.get(s.stamp);
    if (kept) plan.keep.push({ stamp: s.stamp, why: kept });
    else if (s.stamp === protect) plan.keep.push({ stamp: s.stamp, why: ['this run'] });
    else if (!newestVerified || s.stamp > newestVerified)
      plan.keep.push({ stamp: s.stamp, why: ['newer than the newest verified set'] });
    else
      plan.delete.push({
        stamp: s.stamp,
        why: s.verified ? 'beyond the retention policy' : 'unverified leftover of an earlier run',
      });
  }
  return plan;
}

/** Sets that may be removed to make room before a run: older than the newest verified set, oldest first. */
export function setsThatMayMakeRoom(sets: readonly StoredSet[], protect: string): RetentionPlan['delete'] {
  return planRetention(sets, { keepLast: 1, keepWeekly: 0, keepMonthly: 0 }, protect).delete.reverse();
}
