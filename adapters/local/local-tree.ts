import { lstat, mkdir, realpath } from 'node:fs/promises';
import { dirname, join, sep } from 'node:path';

export const PARTIAL_SUFFIX = '.cluster-backup-partial';

export class UnsafeLocalPathError extends Error {
  override name = 'UnsafeLocalPathError';
}

/**
 * Local destination paths for files of one backed-up folder. Every path handed out lies inside `root`,
 * and no parent of it is a symlink leading elsewhere: data can never be written into the wrong folder.
 */
export class LocalTree {
  private realRoot?: string;
  private readonly checkedDirs = new Set<string>();

  constructor(readonly root: string) {}

  pathOf(relative: string): string {
    const full = join(this.root, relative);
    if (!full.startsWith(this.root + sep)) throw new UnsafeLocalPathError(`${relative} resolves outside ${this.root}`);
    return full;
  }

  /** Creates the folder holding `relative` and checks it really is inside the root. */
  async prepareParent(relative: string): Promise<string> {
    const full = this.pathOf(relative);
    const parent = dirname(full);
    if (!this.checkedDirs.has(parent)) {
      await mkdir(parent, { recursive: true });
      this.realRoot ??= await realpath(this.root);
      const realParent = await realpath(parent);
      if (realParent !== this.realRoot && !realParent.startsWith(this.realRoot + sep)) {
        throw new UnsafeLocalPathError(`${parent} leads outside ${this.root} (through a symlink)`);
      }
      this.checkedDirs.add(parent);
    }
    return full;
  }
}

export interface LocalFileState {
  size: number;
  mtimeSeconds: number;
}

/** The regular file at `path`, undefined if none; anything else there (a symlink, a folder) is refused. */
export async function localFileState(path: string): Promise<LocalFileState | undefined> {
  try {
    const st = await lstat(path);
    if (!st.isFile()) throw new UnsafeLocalPathError(`${path} exists and is not a regular file`);
    return { size: st.size, mtimeSeconds: st.mtimeMs / 1000 };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Same file as far as a backup can tell without reading it: same size, same mtime to the second (as rsync). */
export function sameFile(local: LocalFileState | undefined, remote: { size: number; mtime: number }): boolean {
  return (
    local !== undefined && local.size === remote.size && Math.floor(local.mtimeSeconds) === Math.floor(remote.mtime)
  );
}
