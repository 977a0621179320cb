import { SHA256_FUNCTION } from '../ssh/remote-hash';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { posix } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { RemoteCommandError } from '../ssh/remote-command-error';
import { PRIVATE_UMASK } from '../ssh/remote-modes';
import { quote } from '../ssh/shell-quote';
import type { SshSession } from '../ssh/ssh-session';
import { RateCap } from './rate-cap';

export const UPLOAD_PARTIAL_SUFFIX = '.partial';
/** Under an upload's root: the product's own folder for partial files, out of the restored names' way. */
export const RESTORE_PARTIAL_DIR = '.cluster-backup-restore';
const READ_BYTES = 1 << 20;

export interface UploadRequest {
  ssh: SshSession;
  /** The bytes to send: a local file, or `source` (one of the two). */
  localPath?: string;
  /**
   * Instead of a local file: opens the bytes from `start` on (e.g. a `restic dump`); called once per attempt.
   * The stream must yield exactly `size - start` bytes; a short or failing stream fails the upload.
   */
  source?: (start: number) => NodeJS.ReadableStream & { destroy(error?: Error): unknown };
  /** The final name on the remote host; the bytes arrive in a partial file (see partialPathOf), renamed once verified. */
  remotePath: string;
  /**
   * A folder above remotePath that is trusted as it is (created if absent): the folders below it on the way to
   * the file are created one at a time and none may be a symlink (refused, nothing written); the partial file
   * lives in its RESTORE_PARTIAL_DIR. Absent: `mkdir -p` of the file's folder, the partial beside the file.
   */
  root?: string;
  /** Modes of what is created (default PRIVATE_UMASK: files 0600, folders 0700). */
  umask?: string;
  size: number;
  /** SHA-256 the file must have on arrival (the manifest's): a copy that differs is deleted, never renamed. */
  expectedSha256: string;
  /** Bytes a previous attempt reported as sent (its heartbeat): kept if the remote partial holds them. */
  resumeFrom?: number;
  /** Remote mtime (seconds) for the copy, so a later daily run sees it as unchanged. */
  mtime?: number;
  /** Permission bits the file gets (on the partial, before it takes its name); default: the umask's. */
  mode?: number;
  /** 0 or absent: no cap. */
  maxBytesPerSecond?: number;
  onProgress?: (bytesDone: number, bytesTotal: number) => void;
  signal?: AbortSignal;
}

export interface UploadResult {
  bytesTransferred: number;
  resumedAt: number;
  sha256: string;
  /** The file was already in place with the right hash (a retry after the rename). */
  alreadyThere: boolean;
}

const EXIT_SYMLINK = 7;

/**
 * Where the bytes of `remotePath` arrive: below a root, `<root>/.cluster-backup-restore/<SHA-256 of the path
 * below the root>` (no restored name can clash with it, and it is found again by a resumed attempt); without
 * one, `<remotePath>.partial` (for folders only the product writes names in, as the VM restores).
 */
export function partialPathOf(remotePath: string, root?: string): string {
  if (root === undefined) return remotePath + UPLOAD_PARTIAL_SUFFIX;
  const below = createHash('sha256').update(posix.relative(root, remotePath)).digest('hex');
  return posix.join(root, RESTORE_PARTIAL_DIR, below);
}

/** Removes an upload root's partial folder if it is empty (at the end of a restore). */
export async function removeEmptyPartialDir(ssh: SshSession, root: string): Promise<void> {
  await ssh.run({ shell: `rmdir -- ${quote(posix.join(root, RESTORE_PARTIAL_DIR))} 2>/dev/null || true` });
}

/** Size of a remote regular file, -1 when absent (or a symlink, or not a file, or with another hard link). */
async function remoteSize(ssh: SshSession, path: string, signal?: AbortSignal): Promise<number> {
  const p = quote(path);
  const out = await ssh.run(
    { shell: `[ -f ${p} ] && [ ! -L ${p} ] && [ "$(stat -c %h ${p})" = 1 ] && stat -c %s ${p} 2>/dev/null || echo -1` },
    { signal },
  );
  const size = Number(out.toString('utf8').trim());
  if (!Number.isSafeInteger(size)) throw new Error(`${ssh.label}: cannot read the size of ${path}`);
  return size;
}

/** SHA-256 of a remote file, computed on the remote host (after flushing it). */
export async function remoteFileSha256(ssh: SshSession, path: string, signal?: AbortSignal): Promise<string> {
  const out = await ssh.run(
    { shell: `${SHA256_FUNCTION}; sync ${quote(path)} && cb_sha256 < ${quote(path)}` },
    { signal },
  );
  const sha256 = out.toString('utf8').trim();
  if (!/^[0-9a-f]{64}$/.test(sha256)) {
    throw new RemoteCommandError(`${ssh.label}: no SHA-256 for ${path}`, { kind: 'command', host: ssh.label });
  }
  return sha256;
}

/**
 * Shell that opens `partial` on fd 3 (`>` creates it, `>>` keeps it) and goes on only if what was opened is
 * the regular file of that name with no other link: never a symlink's target, a device or someone's hard link,
 * whatever was swapped in after a check. The bytes then go to fd 3, never to the name again.
 */
function openPartialOnFd3(partial: string, redirect: '>' | '>>'): string {
  const p = quote(partial);
  return (
    `exec 3${redirect} ${p} && [ ! -L ${p} ] && [ -f /dev/fd/3 ] && [ ${p} -ef /dev/fd/3 ] && ` +
    `[ "$(stat -L -c %h /dev/fd/3)" = 1 ] || { echo 'the partial file is not a plain file of ours: refused' >&2; exit 1; }`
  );
}

/**
 * Pushes a local file to a remote host as one stream over an SSH exec channel (into a new partial file, or
 * appended to the kept one after truncating it to the resume point), the mirror of streamDownload. On arrival
 * the remote host hashes the whole file; only a copy with the expected SHA-256 is renamed into place.
 */
export async function uploadFile(req: UploadRequest): Promise<UploadResult> {
  const { ssh, signal } = req;
  const partial = partialPathOf(req.remotePath, req.root);
  const umask = req.umask ?? PRIVATE_UMASK;
  await makeFolders(ssh, posix.dirname(req.remotePath), req.root, umask, signal);
  if (req.root !== undefined) {
    if (posix.relative(posix.dirname(partial), req.remotePath).split('/')[0] !== '..')
      throw new RemoteCommandError(`${ssh.label}: ${req.remotePath} is in the restore's own ${RESTORE_PARTIAL_DIR}`, {
        kind: 'unsafe-remote-data',
        host: ssh.label,
      });
    await makeFolders(ssh, posix.dirname(partial), req.root, PRIVATE_UMASK, signal);
  }

  if ((await remoteSize(ssh, req.remotePath, signal)) === req.size) {
    const sha256 = await remoteFileSha256(ssh, req.remotePath, signal);
    if (sha256 === req.expectedSha256) return { bytesTransferred: 0, resumedAt: req.size, sha256, alreadyThere: true };
  }
  const offset = req.resumeFrom ?? 0;
  const held = offset > 0 ? await remoteSize(ssh, partial, signal) : -1;
  // What the remote partial holds is a prefix of the file (cat appends in order); past the reported offset
  // it is not trusted, and short of it only what arrived counts.
  const resumedAt = offset > 0 && held > 0 ? Math.min(offset, held, req.size) : 0;
  // Never through a symlink: a fresh partial is created exclusively (noclobber), a kept one opened as it is;
  // either is checked once open (see openPartialOnFd3).
  const p = quote(partial);
  const command =
    resumedAt > 0
      ? `${umask} && ${openPartialOnFd3(partial, '>>')} && truncate -s ${resumedAt} /dev/fd/3 && exec cat >&3`
      : `${umask} && rm -f ${p} && set -C && ${openPartialOnFd3(partial, '>')} && exec cat >&3`;
  const fail = (message: string, cause?: Error) =>
    new RemoteCommandError(
      `${ssh.label}: ${req.remotePath}: ${message}`,
      { kind: 'transfer', host: ssh.label, command },
      cause,
    );

  const { stdin, finished } = await ssh.execWithInput({ shell: command });
  const limit = req.maxBytesPerSecond ?? 0;
  const cap = new RateCap(limit);
  // Capped: small reads, so the cap spreads the file over time instead of sending it in one burst.
  const readBytes = limit > 0 ? Math.max(4096, Math.min(READ_BYTES, Math.floor(limit / 8))) : READ_BYTES;
  if (!req.source && req.localPath === undefined) throw new Error('uploadFile: neither localPath nor source');
  const source = req.source
    ? req.source(resumedAt)
    : createReadStream(req.localPath!, { start: resumedAt, highWaterMark: readBytes });
  const onAbort = () => {
    source.destroy();
    stdin.destroy();
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  let sent = resumedAt;
  try {
    for await (const chunk of source) {
      const bytes = chunk as Buffer;
      if (sent + bytes.length > req.size)
        throw fail(`the ${req.source ? 'source stream' : 'local file'} grew past ${req.size} bytes`);
      if (!stdin.write(bytes)) {
        await new Promise<void>((resolve, reject) => {
          const done = (err?: Error) => {
            stdin.off('drain', done);
            stdin.off('close', closed);
            if (err) reject(err);
            else resolve();
          };
          const closed = () => done(new Error('the channel closed'));
          stdin.once('drain', done);
          stdin.once('close', closed);
        });
      }
      sent += bytes.length;
      req.onProgress?.(sent, req.size);
      await cap.hold(sent - resumedAt, signal);
    }
    stdin.end();
  } catch (err) {
    onAbort();
    if (signal?.aborted) throw fail('cancelled');
    throw err instanceof RemoteCommandError ? err : fail('stream broke', err as Error);
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
  const result = await finished;
  if (result.exitCode !== 0) throw ssh.commandFailure(command, result, `receiving ${partial}`);
  if (sent !== req.size) throw fail(`sent ${sent} bytes, expected ${req.size}`);

  const sha256 = await remoteFileSha256(ssh, partial, signal);
  if (sha256 !== req.expectedSha256) {
    await ssh.run(['rm', '-f', partial]);
    throw ApplicationFailure.retryable(
      `${req.remotePath}: SHA-256 on arrival (${sha256}) differs from the manifest's (${req.expectedSha256}); copy deleted`,
      'ChecksumMismatch',
    );
  }
  const touch = req.mtime !== undefined ? `touch -d @${Math.floor(req.mtime)} ${quote(partial)} && ` : '';
  const chmod = req.mode !== undefined ? `chmod ${(req.mode & 0o777).toString(8)} ${quote(partial)} && ` : '';
  // -T: a folder (or a symlink to one) under the final name is not moved into.
  await ssh.run({ shell: `${chmod}${touch}mv -fT ${quote(partial)} ${quote(req.remotePath)}` }, { signal });
  return { bytesTransferred: req.size - resumedAt, resumedAt, sha256, alreadyThere: false };
}

/**
 * Creates `dir`: the (trusted) root with `mkdir -p`, below it one folder at a time, refusing a symlink anywhere
 * on the way (a RemoteCommandError of kind unsafe-remote-data: a retry would not change it); without a root,
 * `mkdir -p`.
 */
export async function makeFolders(
  ssh: SshSession,
  dir: string,
  root: string | undefined,
  umask: string,
  signal?: AbortSignal,
) {
  if (root === undefined) {
    await ssh.run({ shell: `${umask} && mkdir -p -- ${quote(dir)}` }, { signal });
    return;
  }
  const below = posix.relative(root, dir);
  if (below === '..' || below.startsWith('../') || posix.isAbsolute(below))
    throw new Error(`${dir} is not below ${root}`);
  const script =
    `${umask}; d=${quote(root)}; mkdir -p -- "$d" || exit 1; ` +
    `for c in ${below === '' ? '' : below.split('/').map(quote).join(' ')}; do d="$d/$c"; ` +
    `if [ -L "$d" ]; then printf %s "$d"; exit ${EXIT_SYMLINK}; fi; ` +
    `[ -d "$d" ] || mkdir -- "$d" || exit 1; done`;
  const result = await ssh.exec({ shell: script }, { signal });
  if (result.exitCode === EXIT_SYMLINK) {
    throw new RemoteCommandError(
      `${ssh.label}: ${result.stdout.toString('utf8')} is a symlink: refusing to write through it (restore to a real folder)`,
      { kind: 'unsafe-remote-data', host: ssh.label },
    );
  }
  if (result.exitCode !== 0) throw ssh.commandFailure(script, result, `creating ${dir}`);
}
