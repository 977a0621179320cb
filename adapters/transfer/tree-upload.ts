import { createHash } from 'node:crypto';
import { readlink } from 'node:fs/promises';
import { posix } from 'node:path';
import { hashFile } from '../local/hash-file';
import { showName, type StagedEntry } from '../local/staged-tree';
import { RemoteCommandError } from '../ssh/remote-command-error';
import { quote } from '../ssh/shell-quote';
import type { SshSession } from '../ssh/ssh-session';
import { makeFolders, removeEmptyPartialDir, uploadFile } from './stream-upload';

/**
 * A checked staged tree (adapters/local/staged-tree.ts: files, folders and symlinks that stay inside it) put
 * on a host over SSH below a restore root: each file through uploadFile (a private partial, its SHA-256
 * checked on arrival, then its mode, mtime and name), folders created one at a time (never through a
 * symlink), symlinks made with `ln -s`, and folder modes and mtimes set last, deepest first.
 */
export interface TreeUpload {
  ssh: SshSession;
  entries: readonly StagedEntry[];
  /** The staged file or folder on this machine. */
  stagedTop: string;
  /** Its name on the host: absolute, normalized, at or below `root`. */
  dest: string;
  /** The host's restore root above `dest` (trusted as it is; nothing is written outside it). */
  root: string;
  overwrite: boolean;
  maxBytesPerSecond?: number;
  signal?: AbortSignal;
}

/** A staged name as the host's path (a string; undefined when the bytes are not UTF-8, which SSH cannot carry as given). */
function remoteName(root: string, rel: Buffer): string | undefined {
  if (rel.length === 0) return root;
  const text = rel.toString('utf8');
  return Buffer.from(text).equals(rel) ? posix.join(root, text) : undefined;
}

/** Names of the tree that cannot be put back over SSH (not UTF-8), to refuse before anything is written. */
export function unsendableNames(entries: readonly StagedEntry[], dest: string): string[] {
  return entries.filter((e) => remoteName(dest, e.rel) === undefined).map((e) => showName(e.rel));
}

/** What a path is on a host, as lstat sees it (a symlink is not followed). */
export type RemoteKind = 'symlink' | 'dir' | 'other' | 'absent';

const KINDS_SCRIPT =
  `xargs -0 sh -c 'for p; do if [ -L "$p" ]; then echo symlink; elif [ -d "$p" ]; then echo dir; ` +
  `elif [ -e "$p" ]; then echo other; else echo absent; fi; done' sh`;

/** What each path is on the host, in order; the paths go on stdin (NUL-separated), never on a command line. */
export async function remoteKinds(
  ssh: SshSession,
  paths: readonly string[],
  signal?: AbortSignal,
): Promise<RemoteKind[]> {
  if (paths.length === 0) return [];
  const out = await ssh.run(
    { shell: KINDS_SCRIPT },
    { input: Buffer.from(paths.map((p) => `${p}\0`).join('')), signal, label: 'checking what is there' },
  );
  const kinds = out.toString('utf8').split('\n').slice(0, -1) as RemoteKind[];
  if (kinds.length !== paths.length)
    throw new RemoteCommandError(`${ssh.label}: asked about ${paths.length} path(s), told about ${kinds.length}`, {
      kind: 'command',
      host: ssh.label,
    });
  return kinds;
}

/**
 * What is already on the host under the tree's names, as `showName`s: files and symlinks (and a file where
 * a folder goes); folders merge.
 */
export async function remoteConflicts(
  ssh: SshSession,
  entries: readonly StagedEntry[],
  dest: string,
  signal?: AbortSignal,
): Promise<string[]> {
  const named = entries.flatMap((e) => {
    const path = remoteName(dest, e.rel);
    return path === undefined ? [] : [{ e, path }];
  });
  const kinds = await remoteKinds(
    ssh,
    named.map((n) => n.path),
    signal,
  );
  return named
    .filter(({ e }, i) => kinds[i] !== 'absent' && !(kinds[i] === 'dir' && e.kind === 'dir'))
    .map((n) => showName(n.path));
}

/** Why a name is not put back over SSH. */
export const NOT_UTF8 = 'not UTF-8: cannot be named over SSH as it is (restore it with --to on this machine)';

/**
 * Puts the tree on the host; returns what was written and overwritten (names as on the host, escaped) and
 * what was not sent (names that are not UTF-8, and what is below them).
 */
export async function uploadStagedTree(
  req: TreeUpload,
): Promise<{ written: string[]; overwritten: string[]; refused: { name: string; why: string }[] }> {
  const { ssh, signal } = req;
  const refused = unsendableNames(req.entries, req.dest).map((name) => ({ name, why: NOT_UTF8 }));
  const entries = req.entries.filter((e) => remoteName(req.dest, e.rel) !== undefined);
  const there = new Set(await remoteConflicts(ssh, entries, req.dest, signal));
  const written: string[] = [];
  const overwritten: string[] = [];
  for (const e of entries) {
    const path = remoteName(req.dest, e.rel)!;
    const shown = showName(path);
    // A folder merges into one there; a symlink or file where it goes is refused by makeFolders.
    if (e.kind !== 'dir' && there.has(shown)) {
      if (!req.overwrite) throw new Error(`${shown} exists on ${ssh.label} (give --overwrite to replace it)`);
      overwritten.push(shown);
    }
    if (e.kind === 'dir') {
      await makeFolders(ssh, path, req.root, 'umask 077', signal);
    } else if (e.kind === 'file') {
      const from = stagedPath(req.stagedTop, e.rel); // UTF-8: filtered above
      const sha256 = (await hashFile(createHash('sha256'), from)).digest('hex');
      const sent = await uploadFile({
        ssh,
        localPath: from,
        remotePath: path,
        root: req.root,
        size: e.bytes,
        expectedSha256: sha256,
        mtime: e.mtime.getTime() / 1000,
        mode: e.mode,
        ...(req.maxBytesPerSecond !== undefined && { maxBytesPerSecond: req.maxBytesPerSecond }),
        ...(signal && { signal }),
      });
      if (sent.alreadyThere) await setModeAndTime(ssh, path, e, signal);
    } else {
      await makeFolders(ssh, posix.dirname(path), req.root, 'umask 077', signal);
      const target = await readlink(stagedPath(req.stagedTop, e.rel), 'utf8'); // checked: stays in the tree
      const p = quote(path);
      // Replaced only as a symlink or file (-n: a symlink to a folder is replaced, not followed).
      await ssh.run(
        {
          shell: `{ [ ! -d ${p} ] || [ -L ${p} ]; } && ln -sfn -- ${quote(target)} ${p} && touch -h -d @${Math.floor(e.mtime.getTime() / 1000)} -- ${p}`,
        },
        { signal, label: `making the symlink ${shown}` },
      );
    }
    written.push(shown);
  }
  for (const e of [...entries].reverse())
    if (e.kind === 'dir') await setModeAndTime(ssh, remoteName(req.dest, e.rel)!, e, signal);
  await removeEmptyPartialDir(ssh, req.root);
  return { written, overwritten, refused };
}

/** chmod and mtime of a folder or file on the host, never through a symlink. */
async function setModeAndTime(ssh: SshSession, path: string, e: StagedEntry, signal?: AbortSignal): Promise<void> {
  const p = quote(path);
  const result = await ssh.exec(
    {
      shell:
        `[ ! -L ${p} ] && [ -e ${p} ] && chmod ${(e.mode & 0o777).toString(8)} -- ${p} && ` +
        `touch -d @${Math.floor(e.mtime.getTime() / 1000)} -- ${p}`,
    },
    { signal },
  );
  if (result.exitCode !== 0)
    throw new RemoteCommandError(`${ssh.label}: ${showName(path)} changed while it was restored (a symlink now?)`, {
      kind: 'unsafe-remote-data',
      host: ssh.label,
    });
}

const stagedPath = (top: string, rel: Buffer) => (rel.length === 0 ? top : posix.join(top, rel.toString('utf8')));
