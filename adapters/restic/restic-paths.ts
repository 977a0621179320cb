import { isAbsolute } from 'node:path';
import { AdapterError } from '../adapter-error';
import { readSecretFile, SecretFileExposedError } from '../local/secret-file';
import { checkSnapshotId, checkTag } from './restic-args';
import { resticError } from './restic-errors';
import { JsonLines, type BackupMessage } from './restic-json';
import { runResticOk, startRestic, tailCollector, type ResticEnv } from './restic-process';

/** What `restic backup --json` said at its end (restic 0.14's summary line). */
export interface PathsBackupResult {
  snapshotId: string;
  dataAdded: number;
  totalBytesProcessed: number;
  filesNew: number;
  filesChanged: number;
  filesUnmodified: number;
}

export interface BackupPathsRequest {
  /** Absolute folders or files; each stored under its own absolute path. */
  paths: string[];
  tags: string[];
  /** bytes_done of restic's status lines. */
  onProgress?: (bytesDone: number) => void;
  signal?: AbortSignal;
}

interface Summary {
  message_type: 'summary';
  snapshot_id: string;
  data_added: number;
  total_bytes_processed: number;
  files_new?: number;
  files_changed?: number;
  files_unmodified?: number;
}

/** An absolute local path restic is given as an argument: never an option, never two lines. */
export function checkLocalPath(what: string, path: string): string {
  const why = !isAbsolute(path)
    ? 'it is not an absolute path'
    : /[\n\r\0]/.test(path)
      ? 'it holds a newline or NUL'
      : undefined;
  if (why)
    throw new AdapterError(
      `restic ${what} ${JSON.stringify(path)} is refused: ${why}`,
      'refused',
      'ResticArgumentError',
    );
  return path; // absolute: it starts with '/', never with '-'
}

/** The same refusal of an exposed or unreadable password file as the Restic class makes. */
export async function checkPasswordFile(env: ResticEnv): Promise<void> {
  try {
    await readSecretFile(env.passwordFile, 'restic password file');
  } catch (error) {
    if (error instanceof SecretFileExposedError)
      throw new AdapterError(error.message, 'auth', 'ResticPasswordFileExposedError', { cause: error });
    throw new AdapterError(
      `restic password file ${env.passwordFile} cannot be read: ${(error as Error).message}`,
      'auth',
      'ResticPasswordFileError',
      { cause: error },
    );
  }
}

/**
 * `restic backup --json <paths>`: one new snapshot of local folders, with the summary restic prints last.
 * The signal interrupts restic (SIGINT: no snapshot, its lock removed) and this throws.
 */
export async function backupPaths(env: ResticEnv, request: BackupPathsRequest): Promise<PathsBackupResult> {
  if (!request.paths.length)
    throw new AdapterError('restic backup without paths is refused', 'refused', 'ResticArgumentError');
  const paths = request.paths.map((p) => checkLocalPath('path', p));
  const tags = request.tags.flatMap((tag) => ['--tag', checkTag(tag)]);
  await checkPasswordFile(env);
  const child = startRestic(env, ['backup', '--json', ...tags, '--', ...paths]);
  const err = tailCollector();
  const lines = new JsonLines<BackupMessage | Summary>();
  let summary: Summary | undefined;
  const take = (messages: (BackupMessage | Summary)[]) => {
    for (const m of messages) {
      if (m.message_type === 'status' && typeof m.bytes_done === 'number') request.onProgress?.(m.bytes_done);
      if (m.message_type === 'summary') summary = m as Summary;
    }
  };
  let aborted = false;
  const onAbort = () => {
    aborted = true;
    child.kill('SIGINT');
  };
  child.stdin.on('error', () => {});
  child.stdin.end();
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => take(lines.feed(chunk)));
  child.stderr.on('data', (chunk: Buffer) => err.add(chunk));
  if (request.signal?.aborted) onAbort();
  else request.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const [code, signal] = await new Promise<[number | null, string | null]>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (c, s) => resolve([c, s]));
    });
    take(lines.end());
    if (aborted)
      throw new AdapterError(`restic backup of ${paths.join(', ')} was aborted`, 'permanent', 'ResticAbortedError');
    // Exit 3: some files could not be read; the snapshot misses them, so it is no backup of the folder:
    // it is forgotten again, so that it is never taken for the folder's copy.
    if (code === 3 && summary) await runResticOk(env, ['forget', checkSnapshotId(summary.snapshot_id)]);
    if (code !== 0) throw resticError('backup', code, signal, err.text());
    if (!summary) throw new AdapterError(`restic backup printed no summary: ${err.text()}`, 'permanent', 'ResticError');
    return {
      snapshotId: summary.snapshot_id,
      dataAdded: summary.data_added,
      totalBytesProcessed: summary.total_bytes_processed,
      filesNew: summary.files_new ?? 0,
      filesChanged: summary.files_changed ?? 0,
      filesUnmodified: summary.files_unmodified ?? 0,
    };
  } finally {
    request.signal?.removeEventListener('abort', onAbort);
  }
}

/**
 * `restic restore <id> --target <folder> --verify`: the snapshot's files under the target, each at its
 * absolute path as backed up (a day folder /b/2026/331 lands in <target>/b/2026/331), read back and
 * checked against the repository's hashes by restic once written.
 */
export async function restoreSnapshot(
  env: ResticEnv,
  request: { snapshotId: string; target: string; signal?: AbortSignal },
): Promise<void> {
  const id = checkSnapshotId(request.snapshotId);
  const target = checkLocalPath('restore target', request.target);
  await checkPasswordFile(env);
  const run = await runResticOk(env, ['restore', id, '--target', target, '--verify'], request.signal);
  // restic 0.14 exits 0 after printing "There were N errors" for files it could not write.
  if (/There were \d+ errors/.test(run.stdout + run.stderr))
    throw resticError('restore', run.code, run.signal, `${run.stdout}\n${run.stderr}`);
}
