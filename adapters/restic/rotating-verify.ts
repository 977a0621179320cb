import type { StoreFileMode } from '../local/file-mode';
import { coverage, listPackFiles, type Coverage, type PackFile } from './repository-packs';
import { checkRepository, type RepositoryCheck } from './repository-verify';
import type { Restic } from './restic';
import { afterFull, afterSubset, readVerifyState, writeVerifyState, type VerifyState } from './verify-state';

export interface RotatingVerify {
  check: RepositoryCheck;
  /** The state as written after this run (next subset, this period's reads). */
  state: VerifyState;
  /** How much of the repository's data this period has read, after this run. */
  coverage: Coverage;
}

/**
 * One `store verify` of a restic repository: the structure, and the data of the next subset n/N (or all of
 * it with `full`), then the rotation moves on and is written to the state file, so N runs read every pack.
 * A check that ends in an error (lock, password) moves nothing: the same subset is read next time.
 */
export async function verifyRotating(options: {
  restic: Restic;
  storeRoot: string;
  subsets: number;
  mode?: StoreFileMode;
  full?: boolean;
  now?: () => Date;
}): Promise<RotatingVerify> {
  const { restic, storeRoot, subsets } = options;
  const now = options.now ?? (() => new Date());
  const before = await readVerifyState(storeRoot, subsets);
  const at = now();
  const subset = before.next;
  const check = await checkRepository(restic, options.full ? 'full' : { subset, of: subsets });
  const packs = check.damaged.map((d) => d.pack);
  const state = options.full
    ? afterFull(before, at, check.ok, packs)
    : afterSubset(before, subset, at, check.ok, packs);
  await writeVerifyState(storeRoot, state, options.mode);
  return { check, state, coverage: periodCoverage(state, await listPackFiles(restic.repository)) };
}

/** This period's coverage; a full read since the period began covers every pack written before it. */
export function periodCoverage(state: VerifyState, packs: readonly PackFile[]): Coverage {
  const full = state.lastFull;
  if (full && (!state.periodStartedAt || full.at >= state.periodStartedAt)) {
    const all = Array.from({ length: state.subsets }, (_, i) => ({ subset: i + 1, at: full.at }));
    const reads = new Map(all.map((r) => [r.subset, r]));
    for (const r of state.read) if (r.at > full.at) reads.set(r.subset, r);
    return coverage(packs, state.subsets, [...reads.values()]);
  }
  return coverage(packs, state.subsets, state.read);
}
