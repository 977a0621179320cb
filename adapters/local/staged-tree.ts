import { chmod, lstat, mkdir, readdir, readlink, rename, rm, utimes } from 'node:fs/promises';
import { posix } from 'node:path';

/**
 * A tree staged in a private folder (restored from a guest) checked and moved into its destination. Names
 * are handled as bytes (Buffers): a guest's names need not be UTF-8, and are shown escaped. Nothing is
 * ever written outside the destination: every folder on the way is lstat'ed (a symlink where a folder is
 * expected is refused), and a symlink is only ever moved, never followed.
 */

/** One name of the tree, relative to its top, as bytes. */
type Rel = Buffer;

const SLASH = Buffer.from('/');
const join = (a: Buffer, b: Buffer): Buffer => (a.length === 0 ? b : Buffer.concat([a, SLASH, b]));

/** A name for people: valid UTF-8 as it is, with control characters and other bytes escaped (\n, \xff). */
export function showName(name: Buffer | string): string {
  const bytes = typeof name === 'string' ? Buffer.from(name) : name;
  let out = '';
  const text = bytes.toString('utf8');
  const roundTrips = Buffer.from(text).equals(bytes);
  const source = roundTrips ? text : bytes.toString('latin1');
  for (const ch of source) {
    const code = ch.codePointAt(0)!;
    if (!roundTrips && code >= 0x80) out += `\\x${code.toString(16).padStart(2, '0')}`;
    else if (code < 0x20 || code === 0x7f)
      out += ch === '\n' ? '\\n' : ch === '\t' ? '\\t' : `\\x${code.toString(16).padStart(2, '0')}`;
    else if (ch === '\\') out += '\\\\';
    else out += ch;
  }
  return out;
}

export interface StagedEntry {
  rel: Rel;
  kind: 'file' | 'dir' | 'symlink';
  mode: number;
  atime: Date;
  mtime: Date;
  bytes: number;
}

export interface StagedCheck {
  /** What may be moved, parents before children. */
  entries: StagedEntry[];
  /** What will not be restored, and why ("a device", "a symlink to /etc/passwd, outside ..."). */
  refused: { name: string; why: string }[];
  /** setuid/setgid bits dropped (a guest's setuid file must not become one of this host's). */
  bitsDropped: string[];
}

const SPECIAL_BITS = 0o6000;

/**
 * Walks `top` (a staged file or folder) with lstat. Kept: regular files, folders, and symlinks whose target
 * stays inside the restored tree (relative, never climbing above `top`). Refused (removed from the staging
 * area, named): devices, FIFOs, sockets, and symlinks that are absolute or climb out.
 */
export async function checkStaged(top: string): Promise<StagedCheck> {
  const check: StagedCheck = { entries: [], refused: [], bitsDropped: [] };
  const topBytes = Buffer.from(top);
  const walk = async (rel: Rel, depth: number): Promise<void> => {
    const path = rel.length === 0 ? topBytes : join(topBytes, rel);
    const st = await lstat(path);
    const name = showName(rel.length === 0 ? posix.basename(top) : rel);
    if (st.isSymbolicLink()) {
      const target = await readlink(path, { encoding: 'buffer' });
      const why = symlinkEscape(target, depth);
      if (why) {
        check.refused.push({ name, why: `a symlink to ${showName(target)}: ${why}` });
        await rm(path, { force: true });
        return;
      }
      check.entries.push({ rel, kind: 'symlink', mode: st.mode & 0o777, atime: st.atime, mtime: st.mtime, bytes: 0 });
      return;
    }
    if (st.isFile() || st.isDirectory()) {
      let mode = st.mode & 0o7777;
      if (mode & SPECIAL_BITS) {
        mode &= ~SPECIAL_BITS;
        check.bitsDropped.push(name);
        await chmod(path, mode);
      }
      const kind = st.isFile() ? 'file' : 'dir';
      check.entries.push({ rel, kind, mode, atime: st.atime, mtime: st.mtime, bytes: st.isFile() ? st.size : 0 });
      if (kind === 'dir')
        for (const child of (await readdir(path, { encoding: 'buffer' })).sort(Buffer.compare))
          await walk(join(rel, child), depth + 1);
      return;
    }
    check.refused.push({ name, why: 'not a file, folder or symlink (a device, FIFO or socket)' });
    await rm(path, { force: true });
  };
  await walk(Buffer.alloc(0), 0);
  return check;
}

/** Why a symlink at `depth` folders below the top would point outside the restored tree; undefined if it stays in. */
function symlinkEscape(target: Buffer, depth: number): string | undefined {
  const text = target.toString('latin1');
  if (text.startsWith('/')) return 'absolute, so outside the restored tree (not restored)';
  let level = depth - 1; // the link's own folder, counted from the top
  for (const part of text.split('/')) {
    if (part === '..') level -= 1;
    else if (part !== '' && part !== '.') level += 1;
    if (level < 0) return 'climbs out of the restored tree (not restored)';
  }
  return undefined;
}

/** Destinations that exist already (would be overwritten): names relative to the destination. */
export async function conflicts(entries: readonly StagedEntry[], dest: string): Promise<string[]> {
  const found: string[] = [];
  const destBytes = Buffer.from(dest);
  for (const e of entries) {
    const path = e.rel.length === 0 ? destBytes : join(destBytes, e.rel);
    const st = await lstat(path).catch(() => undefined);
    if (!st) continue;
    if (e.kind === 'dir' && st.isDirectory()) continue; // folders merge
    found.push(showName(path));
  }
  return found;
}

/**
 * Moves checked entries from `stagedTop` to `dest` (renames on one filesystem): folders are created (or a
 * folder already there is merged into; a symlink or file there is refused), files and symlinks renamed,
 * replacing what is there only with `overwrite`. Then each folder gets its guest mode and times (deepest
 * first, after its content arrived). Returns what was written, relative names.
 */
export async function moveStaged(
  entries: readonly StagedEntry[],
  stagedTop: string,
  dest: string,
  overwrite: boolean,
): Promise<{ written: string[]; overwritten: string[] }> {
  const staged = Buffer.from(stagedTop);
  const target = Buffer.from(dest);
  const at = (root: Buffer, rel: Rel) => (rel.length === 0 ? root : join(root, rel));
  const written: string[] = [];
  const overwritten: string[] = [];
  for (const e of entries) {
    const to = at(target, e.rel);
    const st = await lstat(to).catch(() => undefined);
    if (e.kind === 'dir') {
      if (st && !st.isDirectory())
        throw new Error(`${showName(to)} is there and is not a folder (a symlink or file): not written into`);
      if (!st) await mkdir(to, { mode: 0o700 });
      written.push(showName(to));
      continue;
    }
    if (st) {
      if (!overwrite) throw new Error(`${showName(to)} exists (give --overwrite to replace it)`);
      if (st.isDirectory()) throw new Error(`${showName(to)} is a folder: not replaced by a file`);
      overwritten.push(showName(to));
    }
    await rename(at(staged, e.rel), to);
    if (e.kind === 'file') await utimes(to, e.atime, e.mtime);
    written.push(showName(to));
  }
  for (const e of [...entries].reverse())
    if (e.kind === 'dir') {
      const to = at(target, e.rel);
      await chmod(to, e.mode);
      await utimes(to, e.atime, e.mtime);
    }
  return { written, overwritten };
}
