import { createHash } from 'node:crypto';
import { lstatSync } from 'node:fs';
import { realpath } from 'node:fs/promises';
import { basename, dirname, join, sep } from 'node:path';
import { makeFolders, OWNER_ONLY, type StoreFileMode } from './file-mode';

export const PARTIAL_SUFFIX = '.cluster-backup-partial';
/** Longest file name (bytes) Linux file systems take (NAME_MAX). */
const NAME_MAX = 255;

/** The longest prefix of `text` that fits in `bytes` UTF-8 bytes without splitting a character. */
function utf8Prefix(text: string, bytes: number): string {
  let used = 0;
  let end = 0;
  for (const char of text) {
    used += Buffer.byteLength(char);
    if (used > bytes) break;
    end += char.length;
  }
  return text.slice(0, end);
}

/**
 * Where a file is written before it gets its real name: `<name>.cluster-backup-partial` beside it. A name
 * too long for the suffix is shortened and tagged with a hash of the whole name (unique, still recognisable),
 * as rsync shortens its temporary names: any legal file name can be copied.
 */
export function partialPathOf(path: string): string {
  const name = basename(path);
  if (Buffer.byteLength(name + PARTIAL_SUFFIX) <= NAME_MAX) return path + PARTIAL_SUFFIX;
  const tag = `~${createHash('sha256').update(name).digest('hex').slice(0, 16)}${PARTIAL_SUFFIX}`;
  return join(dirname(path), utf8Prefix(name, NAME_MAX - Buffer.byteLength(tag)) + tag);
}

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

  constructor(
    readonly root: string,
    readonly mode: StoreFileMode = OWNER_ONLY,
  ) {}

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
      await makeFolders(parent, this.mode);
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

/**
 * The regular file at `path`, undefined if none; anything else there (a symlink, a folder) is refused.
 * Synchronous: an lstat answers in microseconds, less than a trip through the thread pool, and a day
 * checks thousands of files.
 */
export function localFileState(path: string): LocalFileState | undefined {
  try {
    const st = lstatSync(path);
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
