import { lstat, mkdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { conflicts, moveStaged, showName, type StagedEntry } from '../../adapters/local/staged-tree';
import { UsageError } from './command-kit';

/**
 * Where restored files go: a folder on this machine, or one on a host over SSH (file-restore-host.ts). Each
 * says what is there already and puts a checked staged tree in place.
 */
export interface RestoreDestination {
  /** `to` as the result shows it (`host:/path` for a host). */
  shown: string;
  /** The private staging folder is made in here. */
  stagingParent: string;
  /** The destination of a top-level name ('' for the guest's /). */
  destOf(name: string): string;
  /** Top-level names that are files there already (known before the appliance boots). */
  existing(names: string[]): Promise<string[]>;
  /** Every staged entry already there (folders merge), or that cannot be written there. */
  conflicts(entries: readonly StagedEntry[], dest: string): Promise<string[]>;
  /** Makes `to` if missing (0700), once everything is checked. */
  prepare(): Promise<void>;
  put(entries: readonly StagedEntry[], top: string, dest: string, overwrite: boolean): Promise<MovedTree>;
  close(): void;
}

export type MovedTree = { written: string[]; overwritten: string[]; refused?: { name: string; why: string }[] };

/** A folder on this machine: staged beside it, so that moving in is a rename. */
export async function localDestination(asked: string): Promise<RestoreDestination> {
  const to = resolve(asked);
  const toStat = await lstat(to).catch(() => undefined);
  if (toStat && !toStat.isDirectory()) throw new UsageError(`--to ${to} is there and is not a folder`);
  const parentStat = await lstat(dirname(to)).catch(() => undefined);
  if (!parentStat?.isDirectory()) throw new UsageError(`--to ${to}: its parent folder ${dirname(to)} does not exist`);
  const destOf = (name: string) => (name ? join(to, name) : to);
  return {
    shown: to,
    stagingParent: dirname(to),
    destOf,
    existing: async (names) => {
      if (!toStat) return [];
      const there: string[] = [];
      for (const name of names.filter(Boolean)) {
        const st = await lstat(destOf(name)).catch(() => undefined);
        if (st && !st.isDirectory()) there.push(showName(destOf(name)));
      }
      return there;
    },
    conflicts,
    prepare: async () => {
      if (!toStat) await mkdir(to, { mode: 0o700 });
    },
    put: moveStaged,
    close: () => undefined,
  };
}
