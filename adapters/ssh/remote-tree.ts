import { SHA256_FUNCTION } from './remote-hash';
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

/** Longest field of a listing: a path (PATH_MAX is 4096 bytes), far more than a size or a time. */
const MAX_FIELD_BYTES = 4096;
/** Most entries a listed folder may hold: far more than a day's files, little enough to keep in memory. */
export const MAX_LISTED_ENTRIES = 500_000;
/** Most bytes a whole listing may hold (its paths, mostly): what keeping it in memory may cost. */
export const MAX_LISTING_BYTES = 64 << 20;

/**
 * Parses `find -printf '%y\0%s\0%T@\0%P\0'` output preceded by the remote clock and a NUL, as it arrives:
 * only the field being read is buffered, and no field, entry count or total size grows past its cap
 * (endless output is refused early, not buffered).
 */
export class TreeListingParser {
  private readonly entries: RemoteEntry[] = [];
  private remoteNow?: number;
  private record: string[] = [];
  private fields = 0;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private listedBytes = 0;

  constructor(
    private readonly host: string,
    private readonly dir: string,
  ) {}

  push(chunk: Buffer): this {
    let start = 0;
    for (let nul = chunk.indexOf(0); nul !== -1; nul = chunk.indexOf(0, start)) {
      this.field(chunk, start, nul);
      start = nul + 1;
    }
    if (start < chunk.length) this.keep(chunk.subarray(start));
    return this;
  }

  end(): { remoteNow: number; entries: RemoteEntry[] } {
    if (this.pendingBytes > 0) this.field(Buffer.alloc(0), 0, 0); // a last field without its NUL
    if (this.remoteNow === undefined || !Number.isFinite(this.remoteNow)) throw this.refuse('no remote clock reading');
    if (this.record.length !== 0) throw this.refuse(`malformed output (${this.fields} fields)`);
    return { remoteNow: this.remoteNow, entries: this.entries };
  }

  private keep(piece: Buffer): void {
    this.pendingBytes += piece.length;
    if (this.pendingBytes > MAX_FIELD_BYTES)
      throw this.refuse(`a field longer than ${MAX_FIELD_BYTES} bytes (the most a path takes)`);
    this.pending.push(piece);
  }

  /** A field ends at `end` of `chunk` (from `start`, after what is pending from earlier chunks). */
  private field(chunk: Buffer, start: number, end: number): void {
    let text: string;
    if (this.pendingBytes === 0) {
      // The common case, a field within one chunk: decoded in place, no buffer made for it.
      if (end - start > MAX_FIELD_BYTES)
        throw this.refuse(`a field longer than ${MAX_FIELD_BYTES} bytes (the most a path takes)`);
      this.listedBytes += end - start;
      text = chunk.toString('utf8', start, end);
    } else {
      this.keep(chunk.subarray(start, end));
      this.listedBytes += this.pendingBytes;
      text = Buffer.concat(this.pending).toString('utf8');
    }
    if (this.listedBytes > MAX_LISTING_BYTES)
      throw this.refuse(`more than ${MAX_LISTING_BYTES >> 20} MiB of listing (the most kept in memory)`);
    if (this.pendingBytes > 0) [this.pending, this.pendingBytes] = [[], 0];
    this.fields += 1;
    if (this.remoteNow === undefined) {
      this.remoteNow = Number(text);
      return;
    }
    this.record.push(text);
    if (this.record.length === 4) this.entry(this.record);
  }

  private entry([typeCode = '', sizeText = '', mtimeText = '', path = '']: string[]): void {
    this.record = [];
    const reason = unsafeRelativePathReason(path);
    if (reason) throw this.refuse(`${reason}: ${JSON.stringify(path)}`);
    const size = Number(sizeText);
    const mtime = Number(mtimeText);
    if (!Number.isSafeInteger(size) || size < 0 || !Number.isFinite(mtime))
      throw this.refuse(`bad size or time for ${JSON.stringify(path)}`);
    if (this.entries.length >= MAX_LISTED_ENTRIES) throw this.refuse(`more than ${MAX_LISTED_ENTRIES} entries`);
    this.entries.push({ type: TYPE_CODES[typeCode] ?? 'other', path, size, mtime });
  }

  private refuse(detail: string): RemoteCommandError {
    return new RemoteCommandError(`${this.host}: refusing listing of ${this.dir}: ${detail}`, {
      kind: 'unsafe-remote-data',
      host: this.host,
      command: `find ${this.dir}`,
    });
  }
}

/** Parses a whole listing (see TreeListingParser). */
export function parseTreeListing(
  output: Buffer,
  host: string,
  dir: string,
): { remoteNow: number; entries: RemoteEntry[] } {
  return new TreeListingParser(host, dir).push(output).end();
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

/**
 * What treeListingScript's exit code says, and its listing (the output fed to `parser`) when it ran; other
 * exit codes are the caller's to report.
 */
export function treeFromListing(exitCode: number | null, parser: TreeListingParser): RemoteTree | undefined {
  if (exitCode === EXIT_MISSING) return { state: 'missing' };
  if (exitCode === EXIT_SYMLINK) return { state: 'not-a-folder', detail: 'is a symlink (not followed)' };
  if (exitCode === EXIT_NOT_DIR) return { state: 'not-a-folder', detail: 'is not a folder' };
  if (exitCode !== 0) return undefined;
  return { state: 'present', ...parser.end() };
}

/**
 * The entries of a listing that followed other output (e.g. a tar archive): those of the folder, none when it
 * is gone, undefined when the listing cannot be used (then the folder is listed anew).
 */
export function entriesFromListing(exitCode: number | null, parser: TreeListingParser): RemoteEntry[] | undefined {
  try {
    const tree = treeFromListing(exitCode, parser);
    if (tree === undefined) return undefined;
    return tree.state === 'present' ? tree.entries : [];
  } catch {
    return undefined;
  }
}

/**
 * Lists a remote folder recursively in one round trip (see treeListingScript), parsed as it arrives: a big
 * listing is never held as a whole, an endless one is refused.
 */
export async function listRemoteTree(ssh: SshSession, dir: string, signal?: AbortSignal): Promise<RemoteTree> {
  const script = treeListingScript(dir);
  const { stdout, finished } = await ssh.execStream({ shell: script });
  const parser = new TreeListingParser(ssh.label, dir);
  const onAbort = () => stdout.destroy();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    for await (const chunk of stdout) parser.push(chunk as Buffer);
  } catch (err) {
    stdout.destroy(); // closes the channel: a refused listing is not read to its end
    if (!signal?.aborted) throw err;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
  if (signal?.aborted) throw ssh.linkFailure(`find ${dir}`, new Error('cancelled'));
  const result = await finished;
  const tree = treeFromListing(result.exitCode, parser);
  if (!tree) throw ssh.commandFailure(script, result);
  return tree;
}

/** SHA-256 of remote files, computed on the remote host, in the order given. */
export async function remoteSha256(ssh: SshSession, paths: readonly string[], signal?: AbortSignal): Promise<string[]> {
  const hashes: string[] = [];
  const BATCH = 200; // stay far below the remote ARG_MAX
  for (let i = 0; i < paths.length; i += BATCH) {
    const batch = paths.slice(i, i + BATCH);
    const script = `${SHA256_FUNCTION}; for f in "$@"; do cb_sha256 < "$f" || exit 1; done`;
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
