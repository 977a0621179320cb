import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, rename, rm, stat, utimes } from 'node:fs/promises';
import { ApplicationFailure } from '@temporalio/common';
import type { SFTPWrapper } from 'ssh2';
import type { TransferConfig } from '../config/schema';
import { sftpDownload } from './adapters/ssh/sftp-download';
import type { SshSession } from './adapters/ssh/ssh-session';
import { zstdDownload } from './adapters/ssh/zstd-download';
import { PARTIAL_SUFFIX } from './local-tree';

export interface FetchRequest {
  /** Pipelined SFTP reads, or zstd on the wire through a remote command (for compressible images). */
  via: { sftp: SFTPWrapper } | { zstd: SshSession };
  host: string;
  remotePath: string;
  localPath: string;
  size: number;
  /** Remote mtime (seconds) to give the local copy, so the next run sees it as unchanged. */
  mtime?: number;
  /** Bytes of the partial file a previous attempt reported as written; they are kept, not fetched again. */
  resumeFrom?: number;
  sha256?: boolean;
  /** The hash the source host computed: a copy that differs is deleted, never renamed into place. */
  expectedSha256?: string;
  transfer: TransferConfig;
  onProgress?: (bytesDone: number, bytesTotal: number) => void;
  signal?: AbortSignal;
}

export interface FetchResult {
  bytesTransferred: number;
  resumedAt: number;
  sha256?: string;
}

async function partialLength(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return -1;
  }
}

async function hashPrefix(path: string, length: number, hash: ReturnType<typeof createHash>): Promise<void> {
  if (length === 0) return;
  for await (const chunk of createReadStream(path, { start: 0, end: length - 1, highWaterMark: 1 << 20 })) {
    hash.update(chunk as Buffer);
  }
}

/**
 * Fetches one remote file into `<localPath>.cluster-backup-partial`, flushes it to disk and only then
 * renames it into place: a reader never sees half a file under the real name.
 */
export async function fetchRemoteFile(req: FetchRequest): Promise<FetchResult> {
  const partial = req.localPath + PARTIAL_SUFFIX;
  const hash = req.sha256 || req.expectedSha256 ? createHash('sha256') : undefined;
  const kept = await partialLength(partial);
  const resumedAt = req.resumeFrom && kept >= req.resumeFrom && req.resumeFrom <= req.size ? req.resumeFrom : 0;

  const file = await open(partial, resumedAt > 0 ? 'r+' : 'w');
  try {
    await file.truncate(resumedAt);
    if (hash) await hashPrefix(partial, resumedAt, hash);
    const common = {
      startOffset: resumedAt,
      expectedSize: req.size,
      hash,
      onProgress: req.onProgress,
      signal: req.signal,
    };
    if ('zstd' in req.via) await zstdDownload(req.via.zstd, req.remotePath, file, common);
    else {
      await sftpDownload(req.via.sftp, req.host, req.remotePath, file, {
        ...common,
        parallelReads: req.transfer.parallelReads,
        chunkBytes: req.transfer.chunkBytes,
        maxBytesPerSecond: req.transfer.maxBytesPerSecond,
      });
    }
    await file.sync();
  } finally {
    await file.close();
  }
  const sha256 = hash?.digest('hex');
  if (req.expectedSha256 && sha256 !== req.expectedSha256) {
    await rm(partial, { force: true });
    throw ApplicationFailure.retryable(
      `${req.remotePath}: SHA-256 of the copy (${sha256}) differs from the source's (${req.expectedSha256}); copy deleted`,
      'ChecksumMismatch',
    );
  }
  if (req.mtime !== undefined) await utimes(partial, req.mtime, req.mtime);
  await rename(partial, req.localPath);
  return { bytesTransferred: req.size - resumedAt, resumedAt, sha256 };
}
