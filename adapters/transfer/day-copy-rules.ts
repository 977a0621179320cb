import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { SupimConfig } from '../../config/schema';
import { RemoteCommandError } from '../ssh/remote-command-error';
import type { RemoteEntry } from '../ssh/remote-tree';
import { LocalTree, localFileState, sameFile, UnsafeLocalPathError } from '../local/local-tree';

/** A day copy's rules and records: its progress and outcome, when a day is ready, what to copy, which errors are for good. */
/** What a day's copy reports in its heartbeats; the next attempt resumes the files in flight from it. */
export interface DayCopyProgress {
  phase: 'listing' | 'copying' | 'verifying' | 'committing';
  filesDone: number;
  filesToCopy: number;
  bytesDone: number;
  bytesToCopy: number;
  inFlight: { path: string; size: number; mtime: number; offset: number }[];
}

/** What became of the files a day's copy was asked for. */
export interface DayCopyOutcome {
  /** Copied and under their real names. */
  committed: number;
  /** Bytes fetched by this attempt for the committed files (a resumed file counts what was left). */
  bytesTransferred: number;
  /** Changed (size or mtime) or vanished on the source while being copied: copied on a later run. */
  changed: string[];
  /** Could not be copied, for a reason no retry fixes (permissions, name, refused path). */
  failed: { path: string; reason: string }[];
  /** Could not be copied for a reason a retry may fix (link, disk): the activity fails after committing the rest. */
  retryable: { path: string; reason: string }[];
}

/** Local errors about this one file (its name, its folder, its permissions) that no retry changes. */
const PERMANENT_LOCAL = new Set(['ENAMETOOLONG', 'EACCES', 'EPERM', 'EISDIR', 'ENOTDIR', 'ELOOP', 'EINVAL', 'EEXIST']);
/** SFTP status codes (as ssh2 reports them) for a file that cannot be opened. */
const SFTP_NO_SUCH_FILE = 2;
const SFTP_PERMISSION_DENIED = 3;

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

/**
 * The files of a listing that the backup lacks or holds in another version (size or mtime differ), and the
 * paths of those it holds in another version (only those can replace a stored copy: see keepLongerBackup).
 */
export function filesToCopy(files: RemoteEntry[], local: LocalTree): { files: RemoteEntry[]; stored: Set<string> } {
  const stored = new Set<string>();
  const changed = files.filter((file) => {
    const state = localFileState(local.pathOf(file.path));
    if (state && !sameFile(state, file)) stored.add(file.path);
    return !sameFile(state, file);
  });
  return { files: changed, stored };
}

/** Whether an error about one file is for good (so: name the file, keep the day) rather than worth a retry. */
export function permanentReason(err: unknown): string | undefined {
  const e = err as Error & { code?: string | number; cause?: { code?: unknown; message?: string } };
  if (err instanceof UnsafeLocalPathError) return err.message;
  if (typeof e.code === 'string' && PERMANENT_LOCAL.has(e.code)) return e.message;
  if (err instanceof RemoteCommandError) {
    if (e.cause?.code === SFTP_PERMISSION_DENIED) return `cannot read it on the source host (${e.cause.message})`;
    // Listed before and after, yet not found under its name: a name that is not valid UTF-8 (find's output
    // is read as UTF-8), which no retry will change.
    if (e.cause?.code === SFTP_NO_SUCH_FILE) return 'the source host cannot open it by its listed name (not UTF-8?)';
    if (err.nonRetryable) return err.message;
  }
  return undefined;
}

/** Flushes every file written so far on the file system holding `path` (syncfs): one call for a day's files. */
export async function syncFileSystem(path: string): Promise<void> {
  await promisify(execFile)('sync', ['-f', path]);
}
