import { RemoteCommandError } from './remote-command-error';
import { quote } from './shell-quote';
import type { SshSession } from './ssh-session';

export type RemoteEntryType = 'file' | 'dir' | 'symlink' | 'other';

export interface RemoteEntry {
  type: RemoteEntryType;
  /** Relative to the listed folder, `/`-separated, checked safe (see `checkRelativePath`). */
  path: string;
  size: number;
  /** Seconds since the epoch, with fraction. */
  mtime: number;
}

export type RemoteTree =
  | { state: 'missing' }
  | { state: 'not-a-folder'; detail: string }
  | { state: 'present'; remoteNow: number; entries: RemoteEntry[] };

const EXIT_MISSING = 3;
const EXIT_SYMLINK = 4;
const EXIT_NOT_DIR = 5;
const TYPE_CODES: Record<string, RemoteEntryType> = { f: 'file', d: 'dir', l: 'symlink' };

/** Why a relative path from a remote listing must not be used locally, or undefined when it is safe. */
export function unsafeRelativePathReason(path: string): string | undefined {
  if (path === '') return 'empty path';
  if (path.startsWith('/')) return 'absolute path';
  if (path.includes('\0')) return 'NUL byte';
  const segments = path.split('/');
  if (segments.some((s) => s === '..')) return '".." segment';
  if (segments.some((s) => s === '' || s === '.')) return 'empty or "." segment';
  return undefined;
}

/** Parses `find -printf '%y\0%s\0%T@\0%P\0'` output preceded by the remote clock and a NUL. */
export function parseTreeListing(
  output: Buffer,
  host: string,
  dir: string,
): { remoteNow: number; entries: RemoteEntry[] } {
  const fields = output.toString('utf8').split('\0');
  if (fields.at(-1) === '') fields.pop();
  const remoteNow = Number(fields.shift());
  const refuse = (detail: string) =>
    new RemoteCommandError(`${host}: refusing listing of ${dir}: ${detail}`, {
      kind: 'unsafe-remote-data',
      host,
      command: `find ${dir}`,
    });
  if (!Number.isFinite(remoteNow)) throw refuse('no remote clock reading');
  if (fields.length % 4 !== 0) throw refuse(`malformed output (${fields.length} fields)`);
  const entries: RemoteEntry[] = [];
  for (let i = 0; i < fields.length; i += 4) {
    const [typeCode = '', sizeText = '', mtimeText = '', path = ''] = fields.slice(i, i + 4);
    const reason = unsafeRelativePathReason(path);
    if (reason) throw refuse(`${reason}: ${JSON.stringify(path)}`);
    const size = Number(sizeText);
    const mtime = Number(mtimeText);
    if (!Number.isSafeInteger(size) || size < 0 || !Number.isFinite(mtime))
      throw refuse(`bad size or time for ${JSON.stringify(path)}`);
    entries.push({ type: TYPE_CODES[typeCode] ?? 'other', path, size, mtime });
  }
  return { remoteNow, entries };
}

/**
 * The shell script that lists a remote folder recursively (`find -P`: no symlink followed), preceded by
 * the remote clock; its exit code says when the folder is missing, a symlink or not a folder.
 * The folder itself must be a real folder: a symlinked day folder is reported, not followed.
 */
export function treeListingScript(dir: string): string {
  return (
    `d=${quote(dir)}; ` +
    `if [ -L "$d" ]; then exit ${EXIT_SYMLINK}; fi; ` +
    `if [ ! -e "$d" ]; then exit ${EXIT_MISSING}; fi; ` +
    `if [ ! -d "$d" ]; then exit ${EXIT_NOT_DIR}; fi; ` +
    `date +%s.%N | tr -d '\\n'; printf '\\0'; ` +
    `exec find -P "$d" -mindepth 1 -printf '%y\\0%s\\0%T@\\0%P\\0'`
  );
}

/** What treeListingScript's exit code and output say; other exit codes are the caller's to report. */
export function treeFromListing(
  exitCode: number | null,
  stdout: Buffer,
  host: string,
  dir: string,
): RemoteTree | undefined {
  if (exitCode === EXIT_MISSING) return { state: 'missing' };
  if (exitCode === EXIT_SYMLINK) return { state: 'not-a-folder', detail: 'is a symlink (not followed)' };
  if (exitCode === EXIT_NOT_DIR) return { state: 'not-a-folder', detail: 'is not a folder' };
  if (exitCode !== 0) return undefined;
  return { state: 'present', ...parseTreeListing(stdout, host, dir) };
}

/** Lists a remote folder recursively in one round trip (see treeListingScript). */
export async function listRemoteTree(ssh: SshSession, dir: string, signal?: AbortSignal): Promise<RemoteTree> {
  const script = treeListingScript(dir);
  const result = await ssh.exec({ shell: script }, { signal });
  const tree = treeFromListing(result.exitCode, result.stdout, ssh.label, dir);
  if (!tree) throw ssh.commandFailure(script, result);
  return tree;
}

/** SHA-256 of remote files, computed on the remote host, in the order given. */
export async function remoteSha256(ssh: SshSession, paths: readonly string[], signal?: AbortSignal): Promise<string[]> {
  const hashes: string[] = [];
  const BATCH = 200; // stay far below the remote ARG_MAX
  for (let i = 0; i < paths.length; i += BATCH) {
    const batch = paths.slice(i, i + BATCH);
    const script = `for f in "$@"; do sha256sum < "$f" | cut -c1-64 || exit 1; done`;
    const out = await ssh.run({ shell: `sh -c ${quote(script)} sh ${batch.map(quote).join(' ')}` }, { signal });
    const lines = out.toString('utf8').split('\n').filter(Boolean);
    if (lines.length !== batch.length || lines.some((l) => !/^[0-9a-f]{64}$/.test(l))) {
      throw new RemoteCommandError(`${ssh.label}: sha256sum gave ${lines.length} hashes for ${batch.length} files`, {
        kind: 'command',
        host: ssh.label,
        command: 'sha256sum',
      });
    }
    hashes.push(...lines);
  }
  return hashes;
}
