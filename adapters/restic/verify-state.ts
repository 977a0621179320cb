import { open, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { applyFileMode, OWNER_ONLY, type StoreFileMode } from '../local/file-mode';

/**
 * The memory of `store verify` on a restic repository: which `--read-data-subset` n/N the next run reads,
 * and what this period (one pass over subsets 1..N) has read so far. A dot file in the store root, beside
 * the repository it speaks of; written through a partial name, flushed, then renamed (never half a file).
 */
export const VERIFY_STATE_FILE = '.restic-verify.json';

export interface SubsetRead {
  subset: number;
  /** When the check of this subset began (packs written after it were not read). */
  at: string;
  ok: boolean;
}

export interface VerifyState {
  version: 1;
  /** N of n/N: the period restarts when store.restic.verifySubsets changes. */
  subsets: number;
  /** The subset the next run reads (1..N). */
  next: number;
  /** When this period's first subset was read. */
  periodStartedAt?: string;
  /** The subsets read this period, in order. */
  read: SubsetRead[];
  /** The last check of any kind. */
  lastCheck?: { at: string; what: string; ok: boolean; damagedPacks: string[] };
  /** The last `--full` check (every pack read). */
  lastFull?: { at: string; ok: boolean };
}

export function verifyStatePath(storeRoot: string): string {
  return join(storeRoot, VERIFY_STATE_FILE);
}

export function freshState(subsets: number): VerifyState {
  return { version: 1, subsets, next: 1, read: [] };
}

/** The state for N subsets: a missing file, or one made for another N, starts a new period at 1. */
export async function readVerifyState(storeRoot: string, subsets: number): Promise<VerifyState> {
  let text: string;
  try {
    text = await readFile(verifyStatePath(storeRoot), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return freshState(subsets);
    throw err;
  }
  let state: VerifyState;
  try {
    state = JSON.parse(text) as VerifyState;
  } catch {
    throw new Error(`${verifyStatePath(storeRoot)} is not JSON: remove it to start the rotation again at 1`);
  }
  if (state.version !== 1 || !Number.isInteger(state.next) || !Array.isArray(state.read))
    throw new Error(`${verifyStatePath(storeRoot)} is not a verify state: remove it to start again at 1`);
  if (state.subsets !== subsets)
    return { ...freshState(subsets), ...(state.lastCheck ? { lastCheck: state.lastCheck } : {}) };
  return state;
}

/** The state after subset `subset` was checked at `at`: the next subset, a new period after N. */
export function afterSubset(state: VerifyState, subset: number, at: Date, ok: boolean, damagedPacks: string[]) {
  const wraps = subset >= state.subsets;
  const newPeriod = subset === 1 || state.read.length === 0;
  const read = [
    ...(newPeriod ? [] : state.read.filter((r) => r.subset !== subset)),
    { subset, at: at.toISOString(), ok },
  ];
  const next: VerifyState = {
    ...state,
    next: wraps ? 1 : subset + 1,
    periodStartedAt: newPeriod ? at.toISOString() : (state.periodStartedAt ?? at.toISOString()),
    read,
    lastCheck: { at: at.toISOString(), what: `subset ${subset}/${state.subsets}`, ok, damagedPacks },
  };
  return next;
}

export function afterFull(state: VerifyState, at: Date, ok: boolean, damagedPacks: string[]): VerifyState {
  return {
    ...state,
    lastCheck: { at: at.toISOString(), what: 'full', ok, damagedPacks },
    lastFull: { at: at.toISOString(), ok },
  };
}

/** Writes the state atomically with the store's file mode (owner-only unless config.permissions says). */
export async function writeVerifyState(storeRoot: string, state: VerifyState, mode: StoreFileMode = OWNER_ONLY) {
  const path = verifyStatePath(storeRoot);
  const partial = `${path}.partial`;
  const file = await open(partial, 'w', mode.fileMode);
  try {
    await applyFileMode(file, mode);
    await file.writeFile(`${JSON.stringify(state, null, 2)}\n`);
    await file.sync();
  } catch (err) {
    await file.close();
    await unlink(partial).catch(() => {});
    throw err;
  }
  await file.close();
  await rename(partial, path);
}
