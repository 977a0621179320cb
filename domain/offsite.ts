/**
 * Off-site copies (3-2-1) as workflows, summaries and reports see them: per off-site repository, whether
 * this run's new snapshots got there and what its check found. Nothing secret (names, counts, pack ids).
 */
export interface OffsiteCheck {
  /** What was read: "structure + subset n/N". */
  what: string;
  ok: boolean;
  /** Pack ids the check named as damaged off-site. */
  damagedPacks: string[];
  /** The sets (vm/stamp/disk) or days whose data is in a damaged pack. */
  broken: string[];
}

export interface OffsiteOutcome {
  /** The repository's name in config (offsite.<name>). */
  repository: string;
  /**
   * copied: every snapshot asked for is there and its check passed; behind: the copy did not finish (server
   * down, stopped): the next run copies what is missing; damaged: copied, but the check there found damage.
   */
  status: 'copied' | 'behind' | 'damaged';
  /** Snapshots this copy added there, and those already there (skipped). */
  saved: number;
  skipped: number;
  /** How much the off-site repository grew (restic stats raw-data after minus before: deduplicated, compressed). */
  bytesAdded?: number;
  /** Snapshots in the off-site repository after the copy. */
  snapshots?: number;
  check?: OffsiteCheck;
  reason?: string;
  seconds?: number;
}

/** What a run needs to copy off-site: the repositories' names and the store task queue that copies. */
export interface OffsiteSettings {
  repositories: string[];
  storeTaskQueue: string;
  heartbeatTimeoutSeconds: number;
}

/** What a run asks to copy off-site: the snapshots of its sets or days, as restic tag groups (AND within). */
export interface OffsiteRequest {
  /** For messages and heartbeats: "day 2026-331", "week 2026-W48". */
  what: string;
  tagGroups: string[][];
}

/** Tag groups of a weekly run's sets: every snapshot (disks and record) of each VM's set `stamp`. */
export function weeklyOffsiteRequest(stamp: string, vms: readonly string[]): OffsiteRequest {
  return { what: `sets ${stamp}`, tagGroups: vms.map((vm) => [`vm=${vm}`, `set=${stamp}`]) };
}

/** Tag groups of a daily run's days (labels yyyy-ddd). */
export function dailyOffsiteRequest(days: readonly string[]): OffsiteRequest {
  return { what: `days ${days.join(', ')}`, tagGroups: days.map((d) => [`day=${d}`]) };
}

/** One report line per off-site repository. */
export function offsiteLine(o: OffsiteOutcome, formatBytes: (n: number) => string): string {
  const parts = [`off-site ${o.repository}: ${o.status}`];
  if (o.status !== 'behind' || o.saved) parts.push(`${o.saved} snapshot(s) copied, ${o.skipped} already there`);
  if (o.bytesAdded !== undefined) parts.push(`${formatBytes(o.bytesAdded)} added there`);
  if (o.check)
    parts.push(
      `check ${o.check.what}: ${o.check.ok ? 'ok' : `DAMAGED packs ${o.check.damagedPacks.map((p) => p.slice(0, 12)).join(', ')}`}`,
    );
  if (o.check?.broken.length) parts.push(`breaks ${o.check.broken.join(', ')}`);
  if (o.reason) parts.push(o.reason);
  return parts.join('; ');
}

/** The report's notes on the off-site copies: one per repository, toned by how it went. */
export function offsiteNotes(
  outcomes: readonly OffsiteOutcome[] | undefined,
  formatBytes: (n: number) => string,
): { text: string; tone: 'good' | 'warn' | 'bad' }[] {
  return (outcomes ?? []).map((o) => ({
    text: offsiteLine(o, formatBytes),
    tone: o.status === 'copied' ? 'good' : o.status === 'behind' ? 'warn' : 'bad',
  }));
}

/**
 * What an OK run's subject adds when an off-site copy did not get everything or found damage there: the
 * local backup stands (the run stays OK), and the subject says which copy is behind.
 */
export function offsiteSubjectNote(outcomes: readonly OffsiteOutcome[] | undefined): string {
  const late = (outcomes ?? []).filter((o) => o.status !== 'copied');
  if (!late.length) return '';
  return `; off-site ${late.map((o) => `${o.repository} ${o.status === 'behind' ? 'BEHIND' : 'DAMAGED'}`).join(', ')}`;
}

/** How fresh an off-site repository is (the watchdog, `status`): its newest snapshot and the allowed age. */
export interface OffsiteFreshness {
  repository: string;
  /** The newest snapshot's time there (ISO), when it has any and could be read. */
  newest?: string;
  ageHours?: number;
  maxAgeHours: number;
  /** Older than maxAgeHours, empty, or not readable (then `reason`). */
  stale: boolean;
  reason?: string;
  /** Behind the primary (when both could be read). */
  lag?: OffsiteLag;
  /** The last `restic check` there (after a copy): when, what it read, whether it passed, damaged packs. */
  lastCheck?: { at: string; what: string; ok: boolean; damagedPacks: string[] };
}

/** The freshness of one repository from its snapshots' times (none: stale). */
export function offsiteFreshness(
  repository: string,
  times: readonly string[],
  maxAgeHours: number,
  now: Date,
): OffsiteFreshness {
  const newestMs = Math.max(...times.map((t) => Date.parse(t)).filter((n) => !Number.isNaN(n)));
  if (!Number.isFinite(newestMs)) return { repository, maxAgeHours, stale: true, reason: 'no snapshot there yet' };
  const ageHours = (now.getTime() - newestMs) / 3_600_000;
  return { repository, newest: new Date(newestMs).toISOString(), ageHours, maxAgeHours, stale: ageHours > maxAgeHours };
}

/** The watchdog's alert text: one line per stale repository. */
export function offsiteStaleLines(stale: readonly OffsiteFreshness[]): string[] {
  return stale.map((f) =>
    f.newest
      ? `off-site ${f.repository}: newest copy ${f.newest} (${f.ageHours!.toFixed(1)} h ago, allowed ${f.maxAgeHours} h)`
      : `off-site ${f.repository}: ${f.reason ?? 'no copy'} (allowed ${f.maxAgeHours} h)`,
  );
}

/** `status`: one line per off-site repository (newest copy there, its age, late or not). */
export function offsiteStatusLines(all: readonly OffsiteFreshness[]): string[] {
  return all.flatMap((f) => [
    f.newest
      ? `off-site ${f.repository}: newest copy ${f.newest.slice(0, 16).replace('T', ' ')} UTC, ${f.ageHours!.toFixed(1)} h ago${f.stale ? ` - LATE (allowed ${f.maxAgeHours} h)` : ''}`
      : `off-site ${f.repository}: ${f.reason?.split('\n')[0] ?? 'no copy'} - LATE`,
    ...(f.lag ? lagLines(f.lag) : []),
    ...(f.lastCheck
      ? [
          `  last check there: ${f.lastCheck.at.slice(0, 16).replace('T', ' ')} UTC, ${f.lastCheck.what}: ${f.lastCheck.ok ? 'ok' : `DAMAGED (${f.lastCheck.damagedPacks.length} pack(s))`}`,
        ]
      : []),
  ]);
}

function lagLines(lag: OffsiteLag): string[] {
  const behind = lag.behindSets.length + lag.behindDays.length;
  const newest = Object.entries(lag.newestSets)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([vm, stamp]) => `${vm} ${stamp}`);
  return [
    behind
      ? `  behind the primary: ${lag.behindSets.length} set(s), ${lag.behindDays.length} day(s), the oldest waiting ${lag.lagHours.toFixed(1)} h` +
        ` (${[...lag.behindSets, ...lag.behindDays].slice(0, 5).join(', ')}${behind > 5 ? ', ...' : ''})`
      : '  behind the primary: nothing',
    `  newest there: ${[...newest, ...(lag.newestDay ? [`day ${lag.newestDay}`] : [])].join(', ') || 'no set or day'}`,
  ];
}

/** What an off-site lag is read from: a snapshot's id, time and tags, and for a copy the id it was copied from. */
export interface SnapshotFacts {
  id: string;
  time: string;
  tags: readonly string[];
  original?: string;
}

/** How far an off-site repository is behind the primary, and what it holds newest per VM and for the days. */
export interface OffsiteLag {
  /** Sets (vm/stamp) recorded in the primary after that VM's newest set there, not copied yet. */
  behindSets: string[];
  /** SUPIM days (yyyy-ddd) in the primary after the newest day there, not copied yet. */
  behindDays: string[];
  /** How long the oldest of those has waited (0: nothing behind). */
  lagHours: number;
  /** Per VM, the newest set there (its stamp). */
  newestSets: Record<string, string>;
  newestDay?: string;
}

const tagOf = (s: SnapshotFacts, key: string) => s.tags.find((t) => t.startsWith(`${key}=`))?.slice(key.length + 1);

/**
 * The lag of an off-site repository from both repositories' snapshots. A primary snapshot is there when a
 * snapshot there names it as its `original` (restic copy) or has its id. Only what is newer than the newest
 * copy of the same VM (or of the days) counts: older ones may be gone there by the off-site host's retention.
 */
export function offsiteLag(primary: readonly SnapshotFacts[], there: readonly SnapshotFacts[], now: Date): OffsiteLag {
  const copied = new Set(there.flatMap((s) => [s.id, ...(s.original ? [s.original] : [])]));
  const newestSets: Record<string, string> = {};
  let newestDay: string | undefined;
  for (const s of there) {
    const vm = tagOf(s, 'vm');
    const stamp = tagOf(s, 'set');
    if (vm && stamp && s.tags.includes('record') && stamp > (newestSets[vm] ?? '')) newestSets[vm] = stamp;
    const day = tagOf(s, 'day');
    if (day && day > (newestDay ?? '')) newestDay = day;
  }
  const behind: { name: string; kind: 'set' | 'day'; time: string }[] = [];
  for (const s of primary) {
    if (copied.has(s.id)) continue;
    const vm = tagOf(s, 'vm');
    const stamp = tagOf(s, 'set');
    const day = tagOf(s, 'day');
    if (vm && stamp && s.tags.includes('record') && stamp > (newestSets[vm] ?? ''))
      behind.push({ name: `${vm}/${stamp}`, kind: 'set', time: s.time });
    else if (day && day > (newestDay ?? '')) behind.push({ name: day, kind: 'day', time: s.time });
  }
  const oldest = Math.min(...behind.map((b) => Date.parse(b.time)).filter((t) => !Number.isNaN(t)));
  return {
    behindSets: [...new Set(behind.filter((b) => b.kind === 'set').map((b) => b.name))].sort(),
    behindDays: [...new Set(behind.filter((b) => b.kind === 'day').map((b) => b.name))].sort(),
    lagHours: Number.isFinite(oldest) ? Math.max(0, (now.getTime() - oldest) / 3_600_000) : 0,
    newestSets,
    ...(newestDay ? { newestDay } : {}),
  };
}
