import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { applyFileMode, makeFolders, OWNER_ONLY, type StoreFileMode } from './file-mode';

/**
 * The file `cluster-backup store init` leaves at the top of each root it writes into. A root without it is
 * most likely a mount point whose disk is not mounted: writing there would fill the system disk.
 */
export const STORE_MARKER = '.cluster-backup-root';

export interface StoreRootInit {
  root: string;
  /** created: made now; marked: the folder existed, the marker was added; ready: both were there. */
  change: 'created' | 'marked' | 'ready';
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/** Creates the root (if missing) and its marker; idempotent. Run by an operator, never by a backup run. */
export async function initStoreRoot(
  root: string,
  options: { mode?: StoreFileMode; now?: Date } = {},
): Promise<StoreRootInit> {
  const mode = options.mode ?? OWNER_ONLY;
  const marker = join(root, STORE_MARKER);
  if (await exists(marker)) return { root, change: 'ready' };
  const hadRoot = await exists(root);
  await makeFolders(root, mode);
  const text = `cluster-backup store root, initialised ${(options.now ?? new Date()).toISOString()}\n`;
  await writeFile(marker, text, { mode: mode.fileMode, flag: 'wx' });
  await applyFileMode(marker, mode);
  return { root, change: hadRoot ? 'marked' : 'created' };
}

/**
 * Refuses (not retryable: only a human can mount a disk) a root that `store init` did not prepare. Creates
 * nothing: a backup must never land on whatever file system happens to be under the mount point.
 */
export async function requireStoreRoot(root: string): Promise<void> {
  try {
    await readFile(join(root, STORE_MARKER));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err;
    throw ApplicationFailure.nonRetryable(
      `${root} has no cluster-backup marker (${STORE_MARKER}): is the backup disk mounted? ` +
        'If this is a new store, run `cluster-backup store init`',
      'StoreRootNotInitialised',
    );
  }
}
