/** The way back: what restores are asked to do and what they report. Pure, importable by workflows. */
import type { ManifestImage } from './image-set';
import type { CompensationRun } from './weekly-summary';

export type RestoreNetwork = 'remove' | 'link-down' | 'keep';

export interface RestoreVmRequest {
  vm: string;
  /** The image set; default: the newest verified one in the store. */
  stamp?: string;
  /** as: a new domain beside the original (the safe default); replace: the original's disks are swapped. */
  mode: 'as' | 'replace';
  /** mode as: the new domain's name (must not exist). */
  newName?: string;
  /** mode as: start the copy once defined. */
  start?: boolean;
  /** mode replace: shut the running original down cleanly first (otherwise a running VM is refused). */
  stop?: boolean;
  /** mode as: what happens to network interfaces (default link-down). */
  network?: RestoreNetwork;
  /** The hypervisor the VM lives on (a name of config `hypervisors`); default: the first one. */
  hypervisor?: string;
  /** Read the set from this off-site repository (a key of config `offsite`) instead of the primary store. */
  offsite?: string;
}

/** A stored set, as a restore reads it from the store. */
export interface StoredSetForRestore {
  vm: string;
  stamp: string;
  images: ManifestImage[];
  domainXml?: string;
}

export type RestoreStep =
  | 'reading-set'
  | 'checking-target'
  | 'pushing'
  | 'defining'
  | 'stopping'
  | 'swapping'
  | 'starting'
  | 'putting-back'
  | 'cleaning-up'
  | 'booting'
  | 'done';

export interface PushedImage {
  disk: string;
  path: string;
  format: string;
  bytes: number;
  sha256: string;
  /** Bytes a crashed attempt had already pushed (0: pushed in one go). */
  resumedAt: number;
}

export interface RestoreProgress {
  vm: string;
  stamp?: string;
  step: RestoreStep;
  steps: { step: RestoreStep; ms: number }[];
  aborted?: string;
}

export interface RestoreVmResult {
  ok: boolean;
  request: RestoreVmRequest;
  vm: string;
  stamp?: string;
  /** The domain that now runs the restored images (the new name, or the original with --replace). */
  domain?: string;
  pushed: PushedImage[];
  /** mode replace: the disk files that were in place before, kept under these names. */
  keptAs: string[];
  /**
   * mode as: devices of the saved definition left out of the copy because they tie a domain to the host
   * (shared host folders, passed-through devices; see restoredDomainXml), one line each.
   */
  leftOut?: string[];
  /** The state the restored domain was left in. */
  state?: string;
  reason?: string;
  failedStep?: RestoreStep;
  /** mode replace after a failure: the original disks are back in place. */
  putBack?: boolean;
  aborted?: string;
  /** What ran on the way out (put back, restart, pushed copy, lock), last pushed first, each outcome. */
  compensations?: CompensationRun[];
  steps: { step: RestoreStep; ms: number }[];
  startedAt: string;
  finishedAt: string;
}

export interface DayRestoreRequest {
  /** yyyy-ddd */
  day: string;
  /** Absolute folder on the host; default: the day's source folder from supim.sourceTemplate. */
  to?: string;
  /** Key into hosts; default: supim.host. */
  host?: string;
  overwrite?: boolean;
  /**
   * store: the plain day folder; restic: the day's newest snapshot in the repository (store.engine restic).
   * Default: the plain folder, or with store.engine restic the snapshot when the folder is missing.
   */
  from?: 'store' | 'restic';
  /** The day's newest snapshot in this off-site repository (a key of config `offsite`), not the store. */
  offsite?: string;
}

export interface DayRestoreResult {
  ok: boolean;
  day: string;
  host: string;
  from: string;
  to: string;
  filesInBackup: number;
  filesRestored: number;
  bytesRestored: number;
  /** The restic snapshot the files came from (short id), when they came from the repository. */
  snapshot?: string;
  /** Files already on the host that were left alone (no --overwrite). */
  existing: string[];
  /** Files already on the host that --overwrite replaced. */
  overwritten: string[];
  /** Names in the backup's day folder that are not regular files (symlinks, ...): not restored. */
  skippedCount?: number;
  /** The first of them, each with what it is. */
  skipped?: string[];
  reason?: string;
  startedAt: string;
  finishedAt: string;
}

/** The names a day restore skipped, one line each (the first of them, then how many more). */
export function skippedLines(r: DayRestoreResult): string[] {
  const listed = r.skipped ?? [];
  const more = (r.skippedCount ?? 0) - listed.length;
  return [...listed.map((f) => `skipped: ${f}`), ...(more > 0 ? [`skipped: ${more} more`] : [])];
}

/** A day restore's result before anything is known (filled in by the activity, or after a failure). */
export function blankDayRestore(request: DayRestoreRequest, startedAt: string): DayRestoreResult {
  return {
    ok: false,
    day: request.day,
    host: request.host ?? '',
    from: '',
    to: request.to ?? '',
    filesInBackup: 0,
    filesRestored: 0,
    bytesRestored: 0,
    existing: [],
    overwritten: [],
    startedAt,
    finishedAt: startedAt,
  };
}

/** One boot test of one VM's newest stored set. */
export interface RestoreTestResult {
  vm: string;
  stamp: string;
  passed: boolean;
  /** Why it failed, or what showed life. */
  detail: string;
  testedAt: string;
  bootSeconds?: number;
  /** A failed test: the last lines the guest printed on its console (see consoleLines), to tell a dead guest from a wrong pattern. */
  console?: string[];
  /** The set was read from this off-site repository (a key of config `offsite`), not the primary store. */
  offsite?: string;
}

export interface RestoreTestSummary {
  ok: boolean;
  /** No VM with a stored set to test. */
  nothingToTest?: boolean;
  result?: RestoreTestResult;
  startedAt: string;
  finishedAt: string;
}

/** The rotation's memory: the last boot test of each VM (kept in the store, see RESTORE_TESTS_FILE). */
export type RestoreTestLog = Record<string, RestoreTestResult>;

/**
 * Which VM to boot-test: one never tested first (by name), otherwise the one tested longest ago. Over the
 * weeks every VM with a stored set gets its turn.
 */
export function nextVmToTest(vms: readonly string[], log: RestoreTestLog): string | undefined {
  const never = vms.filter((vm) => !log[vm]).sort();
  if (never.length) return never[0];
  return [...vms].sort((a, b) => log[a]!.testedAt.localeCompare(log[b]!.testedAt) || a.localeCompare(b))[0];
}

/** One line per VM for `status` and `store verify`, and under a failed one the console lines it quotes. */
export function restoreTestLines(log: RestoreTestLog): string[] {
  return Object.values(log)
    .sort((a, b) => a.vm.localeCompare(b.vm))
    .flatMap((t) => [
      `restore test ${JSON.stringify(t.vm)} set ${t.stamp}: ${t.passed ? 'PASSED' : 'FAILED'} at ${t.testedAt} (${t.detail})`,
      ...consoleQuote(t),
    ]);
}

/** The console lines a failed test quotes, indented under its verdict (nothing for a passed one). */
export function consoleQuote(t: RestoreTestResult, indent = '  '): string[] {
  if (!t.console?.length) return [];
  return [`${indent}last console lines:`, ...t.console.map((line) => `${indent}| ${line}`)];
}

const DAY_LABEL = /^(\d{4})-(\d{3})$/;

/** The ISO date of a julian-day label (2026-331 -> 2026-11-27); an impossible day is refused. */
export function isoDateOfDayLabel(label: string): string {
  const match = DAY_LABEL.exec(label);
  if (!match) throw new Error(`not a julian day (want YYYY-DDD): ${JSON.stringify(label)}`);
  const [year, dayOfYear] = [Number(match[1]), Number(match[2])];
  const date = new Date(Date.UTC(year, 0, dayOfYear));
  if (dayOfYear < 1 || date.getUTCFullYear() !== year) throw new Error(`${year} has no day ${match[2]}`);
  return date.toISOString().slice(0, 10);
}
