import { mkdir, rename, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { SupimConfig, TransferConfig } from '../../config/schema';
import type { DayResult } from '../../domain/daily-summary';
import { fileStamp } from '../../domain/format';
import { remoteSha256, type RemoteEntry } from '../ssh/remote-tree';
import type { SshSession } from '../ssh/ssh-session';
import { fetchRemoteFile } from './fetch-remote-file';
import { LocalTree, localFileState, sameFile } from './local-tree';

/** What a day's copy reports in its heartbeats; the next attempt resumes the files in flight from it. */
export interface DayCopyProgress {
  phase: 'listing' | 'copying' | 'verifying';
  filesDone: number;
  filesToCopy: number;
  bytesDone: number;
  bytesToCopy: number;
  inFlight: { path: string; size: number; mtime: number; offset: number }[];
}

const LARGE_FILE_LANES = 2;

export function newDayCopyProgress(): DayCopyProgress {
  return { phase: 'listing', filesDone: 0, filesToCopy: 0, bytesDone: 0, bytesToCopy: 0, inFlight: [] };
}

/** Why a listed day is not ready to copy, or undefined when it is. */
export function notReadyReason(files: RemoteEntry[], remoteNow: number, supim: SupimConfig): string | undefined {
  if (files.length === 0) return 'source folder is empty';
  if (supim.completionMarker && !files.some((f) => f.path === supim.completionMarker)) {
    return `completion marker ${supim.completionMarker} not written yet`;
  }
  const age = remoteNow - Math.max(...files.map((f) => f.mtime));
  if (supim.settleSeconds > 0 && age < supim.settleSeconds) {
    return `still being written (newest file ${Math.max(0, Math.round(age))} s old, want ${supim.settleSeconds} s)`;
  }
  return undefined;
}

/** The files of a listing that the backup lacks or holds in another version (size or mtime differ). */
export async function filesToCopy(files: RemoteEntry[], local: LocalTree): Promise<RemoteEntry[]> {
  const missing: RemoteEntry[] = [];
  for (const file of files) {
    if (!sameFile(await localFileState(local.pathOf(file.path)), file)) missing.push(file);
  }
  return missing;
}

/**
 * Copies one day's changed files: a few at a time (small files are latency-bound), each to a partial
 * file renamed when complete, resuming partials that a crashed attempt reported in its heartbeats.
 */
export class DayCopy {
  private readonly hashes = new Map<string, string | undefined>();

  constructor(
    private readonly ssh: SshSession,
    private readonly source: string,
    private readonly local: LocalTree,
    private readonly supim: SupimConfig,
    private readonly transfer: TransferConfig,
    private readonly result: DayResult,
    private readonly progress: DayCopyProgress,
    private readonly now: () => Date,
    private readonly signal: AbortSignal,
  ) {}

  async copy(files: RemoteEntry[]): Promise<void> {
    this.progress.phase = 'copying';
    this.progress.filesToCopy = files.length;
    this.progress.bytesToCopy = files.reduce((sum, f) => sum + f.size, 0);
    const previous = Context.current().info.heartbeatDetails as DayCopyProgress | undefined;
    const resumable = new Map((previous?.inFlight ?? []).map((f) => [f.path, f]));
    // Small files are latency-bound: many at once. Large ones fill a whole read pipeline each: a couple at
    // once, which bounds memory at about (LARGE_FILE_LANES x pipeline + parallelFiles x one pipeline's worth).
    const pipelineBytes = this.transfer.parallelReads * this.transfer.chunkBytes;
    const large = files.filter((f) => f.size > pipelineBytes / 8);
    const small = files.filter((f) => f.size <= pipelineBytes / 8);
    const drain = async (queue: RemoteEntry[]) => {
      for (let file = queue.shift(); file; file = queue.shift()) await this.copyOne(file, resumable.get(file.path));
    };
    const lanes = (queue: RemoteEntry[], count: number) =>
      Array.from({ length: Math.min(count, queue.length) }, () => drain(queue));
    await Promise.all([...lanes(large, LARGE_FILE_LANES), ...lanes(small, this.transfer.parallelFiles)]);
  }

  private async copyOne(file: RemoteEntry, before?: DayCopyProgress['inFlight'][number]): Promise<void> {
    const localPath = await this.local.prepareParent(file.path);
    await this.keepLongerBackup(file, localPath);
    const resumeFrom = before && before.size === file.size && before.mtime === file.mtime ? before.offset : 0;
    const slot = { path: file.path, size: file.size, mtime: file.mtime, offset: resumeFrom };
    this.progress.inFlight.push(slot);
    const fetched = await fetchRemoteFile({
      ssh: this.ssh,
      via: 'sftp',
      remotePath: `${this.source}/${file.path}`,
      localPath,
      size: file.size,
      mtime: file.mtime,
      resumeFrom,
      sha256: this.supim.verify === 'sha256',
      transfer: this.transfer,
      signal: this.signal,
      onProgress: (done) => {
        this.progress.bytesDone += done - slot.offset;
        slot.offset = done; // the periodic heartbeat (whileHeartbeating) reports it
      },
    });
    this.progress.inFlight.splice(this.progress.inFlight.indexOf(slot), 1);
    this.progress.filesDone += 1;
    this.result.filesCopied += 1;
    this.result.bytesCopied += fetched.bytesTransferred;
    this.hashes.set(file.path, fetched.sha256);
  }

  /** Never lets a shorter source file silently replace a longer backup: the old copy is moved aside. */
  private async keepLongerBackup(file: RemoteEntry, localPath: string): Promise<void> {
    const existing = await localFileState(localPath);
    if (!existing || existing.size <= file.size) return;
    const stamp = fileStamp(this.now());
    const keptAs = join(this.supim.destinationRoot, '.superseded', this.result.day.label, stamp, file.path);
    await mkdir(dirname(keptAs), { recursive: true });
    await rename(localPath, keptAs);
    this.result.superseded.push(`${file.path} (${existing.size} bytes, kept at ${keptAs})`);
  }

  /** Sizes always; SHA-256 on both ends when configured (the local hash was taken while streaming). */
  async verify(files: RemoteEntry[]): Promise<void> {
    this.progress.phase = 'verifying';
    const mismatch = (message: string) => ApplicationFailure.retryable(message, 'CopyVerifyError');
    for (const file of files) {
      const size = (await stat(this.local.pathOf(file.path))).size;
      if (size !== file.size) throw mismatch(`${file.path}: copied ${size} bytes, source has ${file.size}`);
    }
    if (this.supim.verify !== 'sha256') return;
    const remote = await remoteSha256(
      this.ssh,
      files.map((f) => `${this.source}/${f.path}`),
      this.signal,
    );
    files.forEach((file, i) => {
      if (remote[i] !== this.hashes.get(file.path)) {
        throw mismatch(`${file.path}: SHA-256 differs between the compute host and the backup`);
      }
    });
  }
}
