import { listPackFiles } from './repository-packs';
import type { Restic } from './restic';
import { periodCoverage } from './rotating-verify';
import { readVerifyState } from './verify-state';

/** The restic repository's numbers for `status`, reports and metrics. */
export interface RepositoryNumbers {
  repository: string;
  /** `restic stats --mode raw-data`: the stored (deduplicated, compressed) blob bytes. */
  storedBytes: number;
  /** The repository's pack files on disk (data/), as the file system counts them. */
  packBytes: number;
  packs: number;
  /** `restic stats --mode restore-size`: the raw bytes of every snapshot (all sets, as restored). */
  restoreBytes: number;
  snapshots: number;
  /** restoreBytes / storedBytes: how many bytes of sets each stored byte stands for. */
  dedupRatio: number;
  verify: {
    subsets: number;
    next: number;
    /** The subsets read this period (one pass over 1..N). */
    subsetsRead: number;
    periodStartedAt?: string;
    /** Share of the repository's bytes a check read this period (0..1). */
    coverage: number;
    lastCheck?: { at: string; what: string; ok: boolean; damagedPacks: string[] };
    lastFull?: { at: string; ok: boolean };
  };
}

/** Collects the numbers: two `restic stats` runs (read the index and the trees, no pack data), the state file. */
export async function repositoryNumbers(
  restic: Restic,
  storeRoot: string,
  subsets: number,
): Promise<RepositoryNumbers> {
  const raw = await restic.stats('raw-data');
  const restore = await restic.stats('restore-size');
  const packs = await listPackFiles(restic.repository);
  const state = await readVerifyState(storeRoot, subsets);
  const cover = periodCoverage(state, packs);
  return {
    repository: restic.repository,
    storedBytes: raw.total_size,
    packBytes: cover.totalBytes,
    packs: packs.length,
    restoreBytes: restore.total_size,
    snapshots: restore.snapshots_count ?? raw.snapshots_count ?? 0,
    dedupRatio: raw.total_size > 0 ? restore.total_size / raw.total_size : 1,
    verify: {
      subsets: state.subsets,
      next: state.next,
      subsetsRead: new Set(state.read.map((r) => r.subset)).size,
      ...(state.periodStartedAt ? { periodStartedAt: state.periodStartedAt } : {}),
      coverage: cover.fraction,
      ...(state.lastCheck ? { lastCheck: state.lastCheck } : {}),
      ...(state.lastFull ? { lastFull: state.lastFull } : {}),
    },
  };
}
