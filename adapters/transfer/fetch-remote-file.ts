import { open, rename, rm, stat, utimes } from 'node:fs/promises';
import { ApplicationFailure } from '@temporalio/common';
import type { TransferConfig } from '../../config/schema';
import { sftpDownload } from './sftp-download';
import type { SshSession } from '../ssh/ssh-session';
import { streamDownload } from './stream-download';
import { BACKGROUND_SINK_BYTES, BackgroundFileSink, InlineFileSink, type FileSink } from './file-sink';
import { applyFileMode, OWNER_ONLY, type StoreFileMode } from '../local/file-mode';
import { partialPathOf } from '../local/local-tree';

export interface FetchRequest {
  ssh: SshSession;
  /**
   * Pipelined SFTP reads (many files over one session), or one stream from a remote command (big files;
   * zstd: compressed on the wire, for mostly-empty images).
   */
  via: 'sftp' | 'stream' | 'zstd';
  remotePath: string;
  localPath: string;
  /** Where the copy is written before it gets its real name (default: partialPathOf(localPath), beside it). */
  partialPath?: string;
  size: number;
  /** Remote mtime (seconds) to give the local copy, so the next run sees it as unchanged. */
  mtime?: number;
  /** Bytes of the partial file a previous attempt reported as written; they are kept, not fetched again. */
  resumeFrom?: number;
  sha256?: boolean;
  /** The hash the source host computed: a copy that differs is deleted, never renamed into place. */
  expectedSha256?: string;
  transfer: TransferConfig;
  /** Mode and group of the copy; default: readable by the worker's user only. */
  fileMode?: StoreFileMode;
  /** Leave the flushed copy under its partial name (see partialPathOf) for the caller to commit. */
  keepPartial?: boolean;
  onProgress?: (bytesDone: number, bytesTotal: number) => void;
  signal?: AbortSignal;
}

export interface FetchResult {
  bytesTransferred: number;
  resumedAt: number;
  sha256?: string;
  /** Where the copy is, when keepPartial asked to leave it there. */
  partial: string;
}

async function partialLength(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return -1;
  }
}

/** Gives a flushed partial copy its mtime and its real name. */
export async function commitPartial(partial: string, localPath: string, mtime: number | undefined): Promise<void> {
  if (mtime !== undefined) await utimes(partial, mtime, mtime);
  await rename(partial, localPath);
}

/**
 * Fetches one remote file into its partial file (partialPathOf), flushes it to disk and only then
 * renames it into place: a reader never sees half a file under the real name.
 */
export async function fetchRemoteFile(req: FetchRequest): Promise<FetchResult> {
  const partial = req.partialPath ?? partialPathOf(req.localPath);
  const hashing = req.sha256 === true || req.expectedSha256 !== undefined;
  const offset = req.resumeFrom ?? 0;
  const resumable = offset > 0 && offset <= req.size && (await partialLength(partial)) >= offset;
  const resumedAt = resumable ? offset : 0;

  let sha256: string | undefined;
  const mode = req.fileMode ?? OWNER_ONLY;
  const file = await open(partial, resumedAt > 0 ? 'r+' : 'w', mode.fileMode); // 'w' starts from an empty file
  try {
    await applyFileMode(file, mode);
    if (resumedAt > 0) await file.truncate(resumedAt); // what lies past the reported offset is not trusted
    const sink: FileSink =
      req.size - resumedAt >= BACKGROUND_SINK_BYTES
        ? new BackgroundFileSink(file, hashing)
        : new InlineFileSink(file, hashing);
    try {
      await sink.seed(partial, resumedAt);
      const common = { startOffset: resumedAt, expectedSize: req.size, onProgress: req.onProgress, signal: req.signal };
      if (req.via !== 'sftp') {
        await streamDownload(req.ssh, req.remotePath, sink, {
          ...common,
          compressed: req.via === 'zstd',
          bulkClient: req.transfer.bulkClient,
          maxBytesPerSecond: req.transfer.maxBytesPerSecond,
        });
      } else {
        await sftpDownload(await req.ssh.sftp(), req.ssh.label, req.remotePath, sink, {
          ...common,
          inOneWrite: (send) => req.ssh.inOneWrite(send),
          parallelReads: req.transfer.parallelReads,
          chunkBytes: req.transfer.chunkBytes,
          maxBytesPerSecond: req.transfer.maxBytesPerSecond,
        });
      }
      sha256 = await sink.digest();
    } finally {
      await sink.close();
    }
    await file.sync();
  } finally {
    await file.close();
  }
  if (req.expectedSha256 && sha256 !== req.expectedSha256) {
    await rm(partial, { force: true });
    throw ApplicationFailure.retryable(
      `${req.remotePath}: SHA-256 of the copy (${sha256}) differs from the source's (${req.expectedSha256}); copy deleted`,
      'ChecksumMismatch',
    );
  }
  if (!req.keepPartial) await commitPartial(partial, req.localPath, req.mtime);
  return { bytesTransferred: req.size - resumedAt, resumedAt, sha256, partial };
}
