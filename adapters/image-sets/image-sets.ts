import type { RetentionPolicy, StoredSet } from '../../domain/retention';
import { planRetention, setsThatMayMakeRoom } from '../../domain/retention';
import { unsafeVmNameReason } from '../../domain/vm-names';
import type { SetManifest } from './manifest';

/** A set's folder name: the run's start, yyyymmddThhmmssZ (sorts by time). */
export const STAMP = /^\d{8}T\d{6}Z$/;
/** A disk's target (vda): names its image file. */
export const DISK_TARGET = /^[a-z0-9]{1,32}$/i;
/** Files of an unfinished write: never counted as part of a set, removed by the next attempt. */
export const PARTIAL_SUFFIX = '.partial';

export interface ImageSetSummary extends StoredSet {
  /** Apparent size of the set's files. */
  bytes: number;
  /** What the files occupy on disk (st_blocks): sparse images take less, and this is what space admission counts. */
  allocatedBytes: number;
}

/**
 * Image sets, `<root>/<vm>/<stamp>/<disk>.<format>` + manifest.json, wherever they live: the hypervisor's image
 * area (over SSH) and the backup store (local disk) are the same thing with different I/O.
 */
export interface ImageSets {
  readonly root: string;
  /** For messages: which area (host and root). */
  readonly where: string;
  freeBytes(): Promise<number>;
  listSets(vm: string): Promise<ImageSetSummary[]>;
  removeSet(vm: string, stamp: string): Promise<void>;
  removePartials(vm: string, stamp: string): Promise<void>;
  /** Undefined when the set has none (never completed). */
  readManifest(vm: string, stamp: string): Promise<SetManifest | undefined>;
  /** Written last, through a partial name: from then on the set counts as complete and verified. */
  writeManifest(vm: string, stamp: string, manifest: SetManifest): Promise<string>;
}

export class UnsafeImageSetPath extends Error {
  override name = 'UnsafeImageSetPath';
}

/** A VM's folder name, checked: one safe path segment. */
export function vmFolder(vm: string): string {
  const reason = unsafeVmNameReason(vm);
  if (reason) throw new UnsafeImageSetPath(`VM name ${JSON.stringify(vm)} ${reason}`);
  return vm;
}

/** `<vm>/<stamp>` relative to a root, every part checked: nothing a path could hide in. */
export function setPathParts(vm: string, stamp: string): [string, string] {
  if (!STAMP.test(stamp)) throw new UnsafeImageSetPath(`bad image stamp ${JSON.stringify(stamp)}`);
  return [vmFolder(vm), stamp];
}

export interface RoomOutcome {
  ok: boolean;
  freeBytes: number;
  deleted: string[];
  /** With dryRun: the sets that would have been deleted. */
  wouldDelete: string[];
}

/**
 * Frees space for a new set by removing the VM's sets older than its newest verified one, oldest first, until
 * `requiredBytes` are free. With dryRun nothing is removed: the sets are listed and their allocated bytes
 * counted as if they were.
 */
export async function makeRoom(
  sets: ImageSets,
  vm: string,
  protect: string,
  requiredBytes: number,
  dryRun = false,
): Promise<RoomOutcome> {
  const outcome: RoomOutcome = { ok: false, freeBytes: await sets.freeBytes(), deleted: [], wouldDelete: [] };
  let wouldFree = 0;
  if (outcome.freeBytes < requiredBytes) {
    const listed = await sets.listSets(vm);
    for (const set of setsThatMayMakeRoom(listed, protect)) {
      const entry = `${vm}/${set.stamp} (${set.why})`;
      if (dryRun) {
        outcome.wouldDelete.push(entry);
        wouldFree += listed.find((s) => s.stamp === set.stamp)?.allocatedBytes ?? 0;
        if (outcome.freeBytes + wouldFree >= requiredBytes) break;
        continue;
      }
      await sets.removeSet(vm, set.stamp);
      outcome.deleted.push(entry);
      outcome.freeBytes = await sets.freeBytes();
      if (outcome.freeBytes >= requiredBytes) break;
    }
  }
  outcome.ok = outcome.freeBytes >= requiredBytes;
  return outcome;
}

export interface RetentionOutcome {
  deleted: string[];
  /** With dryRun: what the policy would delete; nothing was. */
  wouldDelete?: string[];
  freeBytes: number;
}

/** Applies a retention policy to one VM's sets (never this run's, never the newest verified one). */
export async function applyRetention(
  sets: ImageSets,
  vm: string,
  policy: RetentionPolicy,
  protect: string,
  dryRun = false,
): Promise<RetentionOutcome> {
  const plan = planRetention(await sets.listSets(vm), policy, protect);
  const entries = plan.delete.map((d) => `${vm}/${d.stamp} (${d.why})`);
  if (dryRun) return { deleted: [], wouldDelete: entries, freeBytes: await sets.freeBytes() };
  for (const set of plan.delete) await sets.removeSet(vm, set.stamp);
  return { deleted: entries, freeBytes: await sets.freeBytes() };
}
