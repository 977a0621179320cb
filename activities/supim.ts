import { mkdir, rename, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { Config } from '../config/schema';
import { blankDayResult, type DailySettings, type DayResult } from '../domain/daily-summary';
import type { CalendarDay } from '../domain/julian-day';
import { listRemoteTree, remoteSha256, type RemoteEntry } from './adapters/ssh/remote-tree';
import type { SshSession } from './adapters/ssh/ssh-session';
import { fetchRemoteFile } from './fetch-remote-file';
import { LocalTree, localFileState, sameFile, UnsafeLocalPathError } from './local-tree';

export interface SupimDeps {
  config: Config;
  /** Opens the SSH session to a configured host; the activity closes it. */
  openSsh: (hostKey: string) => Promise<SshSession>;
  /** Injected for tests; defaults to the wall clock. */
  now?: () => Date;
}

/** What a copy reports in its heartbeats; the next attempt resumes from it. */
export interface DayCopyProgress {
  filesDone: number;
  filesToCopy: number;
  bytesDone: number;
  bytesToCopy: number;
  inFlight: { path: string; size: number; mtime: number; offset: number }[];
}

const MAX_LISTED = 20;

export function createSupimActivities({ config, openSsh, now = () => new Date() }: SupimDeps) {
  const supim = config.supim;
  const transfer = config.transfer;

  async function getDailySettings(): Promise<DailySettings> {
    const { timeZone, daysBack, sourceTemplate, destinationRoot, verify } = supim;
    return { timeZone, daysBack, sourceTemplate, destinationRoot, verify };
  }

  /** Probes one julian day on the compute host and copies whatever is missing or differs. Idempotent. */
  async function backupSupimDay(day: CalendarDay): Promise<DayResult> {
    const started = now().getTime();
    const result = blankDayResult(day, await getDailySettings(), 'complete');
    const { source, destination } = result;
    const finish = (status: DayResult['status'], reason?: string): DayResult => ({
      ...result,
      status,
      ...(reason ? { reason } : {}),
      durationMs: now().getTime() - started,
    });

    const ctx = Context.current();
    const signal = ctx.cancellationSignal;
    const ssh = await openSsh(supim.host);
    try {
      const tree = await listRemoteTree(ssh, source, signal);
      if (tree.state === 'missing') return finish('not-yet', 'source folder does not exist yet');
      if (tree.state === 'not-a-folder') return finish('failed', `source ${tree.detail}`);

      const files = tree.entries.filter((e) => e.type === 'file');
      const ignored = tree.entries.filter((e) => e.type === 'symlink' || e.type === 'other');
      result.filesInSource = files.length;
      result.bytesInSource = files.reduce((sum, f) => sum + f.size, 0);
      result.skippedCount = ignored.length;
      result.skipped = ignored.slice(0, MAX_LISTED).map((e) => `${e.path} (${e.type}, not followed)`);

      if (files.length === 0) return finish('not-yet', 'source folder is empty');
      if (supim.completionMarker && !files.some((f) => f.path === supim.completionMarker)) {
        return finish('not-yet', `completion marker ${supim.completionMarker} not written yet`);
      }
      const newest = Math.max(...files.map((f) => f.mtime));
      if (supim.settleSeconds > 0 && tree.remoteNow - newest < supim.settleSeconds) {
        return finish('not-yet', `still being written (newest file ${Math.max(0, Math.round(tree.remoteNow - newest))} s old, want ${supim.settleSeconds} s)`);
      }

      const local = new LocalTree(destination);
      const toCopy: RemoteEntry[] = [];
      for (const file of files) {
        if (!sameFile(await localFileState(local.pathOf(file.path)), file)) toCopy.push(file);
      }
      if (toCopy.length === 0) return finish('complete');

      await mkdir(destination, { recursive: true });
      const copied = await copyFiles(ssh, source, local, toCopy, day, result, signal);
      await verifyCopies(ssh, source, local, toCopy, copied, signal);
      return finish('copied');
    } catch (err) {
      if (err instanceof UnsafeLocalPathError) {
        throw ApplicationFailure.nonRetryable(err.message, 'UnsafeLocalPathError');
      }
      throw err;
    } finally {
      ssh.close();
    }
  }

  /** Copies with a few files in flight (small files are latency-bound), resuming partials a crashed attempt left. */
  async function copyFiles(
    ssh: SshSession,
    source: string,
    local: LocalTree,
    toCopy: RemoteEntry[],
    day: CalendarDay,
    result: DayResult,
    signal: AbortSignal,
  ): Promise<Map<string, string | undefined>> {
    const ctx = Context.current();
    const previous = ctx.info.heartbeatDetails as DayCopyProgress | undefined;
    const resumable = new Map((previous?.inFlight ?? []).map((f) => [f.path, f]));
    const sftp = await ssh.sftp();
    const hashes = new Map<string, string | undefined>();
    const progress: DayCopyProgress = {
      filesDone: 0,
      filesToCopy: toCopy.length,
      bytesDone: 0,
      bytesToCopy: toCopy.reduce((s, f) => s + f.size, 0),
      inFlight: [],
    };
    const queue = [...toCopy];

    const copyOne = async (file: RemoteEntry) => {
      const localPath = await local.prepareParent(file.path);
      const existing = await localFileState(localPath);
      if (existing && existing.size > file.size) {
        // Never let a shorter source file silently replace a longer backup: keep the old one aside.
        const stamp = now().toISOString().replace(/[:.]/g, '-');
        const keptAs = join(supim.destinationRoot, '.superseded', day.label, stamp, file.path);
        await mkdir(dirname(keptAs), { recursive: true });
        await rename(localPath, keptAs);
        result.superseded.push(`${file.path} (${existing.size} bytes, kept at ${keptAs})`);
      }
      const before = resumable.get(file.path);
      const resumeFrom = before && before.size === file.size && before.mtime === file.mtime ? before.offset : 0;
      const slot = { path: file.path, size: file.size, mtime: file.mtime, offset: resumeFrom };
      progress.inFlight.push(slot);
      let counted = resumeFrom;
      const fetched = await fetchRemoteFile({
        sftp,
        host: ssh.label,
        remotePath: `${source}/${file.path}`,
        localPath,
        size: file.size,
        mtime: file.mtime,
        resumeFrom,
        sha256: supim.verify === 'sha256',
        transfer,
        signal,
        onProgress: (done) => {
          progress.bytesDone += done - counted;
          counted = done;
          slot.offset = done;
          ctx.heartbeat(progress);
        },
      });
      progress.inFlight.splice(progress.inFlight.indexOf(slot), 1);
      progress.filesDone += 1;
      result.filesCopied += 1;
      result.bytesCopied += fetched.bytesTransferred;
      hashes.set(file.path, fetched.sha256);
      ctx.heartbeat(progress);
    };

    const lane = async () => {
      for (let file = queue.shift(); file; file = queue.shift()) await copyOne(file);
    };
    await Promise.all(Array.from({ length: Math.min(transfer.parallelFiles, toCopy.length) }, lane));
    return hashes;
  }

  async function verifyCopies(
    ssh: SshSession,
    source: string,
    local: LocalTree,
    copied: RemoteEntry[],
    localHashes: Map<string, string | undefined>,
    signal: AbortSignal,
  ): Promise<void> {
    for (const file of copied) {
      const size = (await stat(local.pathOf(file.path))).size;
      if (size !== file.size) {
        throw ApplicationFailure.retryable(`${file.path}: copied ${size} bytes, source has ${file.size}`, 'CopyVerifyError');
      }
    }
    if (supim.verify !== 'sha256') return;
    const remote = await remoteSha256(ssh, copied.map((f) => `${source}/${f.path}`), signal);
    copied.forEach((file, i) => {
      if (remote[i] !== localHashes.get(file.path)) {
        throw ApplicationFailure.retryable(`${file.path}: SHA-256 differs between compute host and backup`, 'CopyVerifyError');
      }
    });
  }

  return { getDailySettings, backupSupimDay };
}

export type SupimActivities = ReturnType<typeof createSupimActivities>;
