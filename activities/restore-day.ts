import { createHash } from 'node:crypto';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { Config } from '../config/schema';
import { calendarDay } from '../domain/julian-day';
import { renderPathTemplate } from '../domain/path-template';
import { remoteTarget, restoreRootOf, restoreRoots } from '../config/restore-roots';
import { blankDayRestore, isoDateOfDayLabel, type DayRestoreRequest, type DayRestoreResult } from '../domain/restore';
import { hashFile } from '../adapters/local/hash-file';
import { LocalTree } from '../adapters/local/local-tree';
import { listRemoteTree } from '../adapters/ssh/remote-tree';
import type { SshSession } from '../adapters/ssh/ssh-session';
import { removeEmptyPartialDir, uploadFile } from '../adapters/transfer/stream-upload';
import { requireSection } from './config-section';
import { whileHeartbeating } from './heartbeat';
import { stageDaySnapshot } from './restic-day-stage';
import { offsiteEnvOf } from '../adapters/restic/offsite';

export interface DayRestoreDeps {
  config: Config;
  openSsh: (hostKey: string) => Promise<SshSession>;
  now?: () => Date;
}

/** What a day restore reports in its heartbeats; files done are not sent again. */
interface DayRestoreProgress {
  done: string[];
  current?: { path: string; offset: number };
  bytesDone: number;
}

/** Skipped names listed in a result (all are counted). */
const MAX_LISTED = 20;

const refuse = (message: string, type: string) => ApplicationFailure.nonRetryable(message, type);

/** The way back for the daily job: a SUPIM day from the store to a host (runs on the store task queue). */
export function createDayRestoreActivities({ config, openSsh, now = () => new Date() }: DayRestoreDeps) {
  /**
   * A SUPIM day from the backup store back to a host: each file pushed as a stream, hashed on arrival and
   * compared with the store's copy, renamed into place, given its mtime back. A file already there is left
   * alone and listed, unless `overwrite`.
   */
  async function restoreSupimDay(request: DayRestoreRequest): Promise<DayRestoreResult> {
    const supim = requireSection(config.supim, 'supim');
    const day = calendarDay(isoDateOfDayLabel(request.day));
    const hostKey = request.host ?? supim.host;
    if (!config.hosts[hostKey])
      throw refuse(`no host ${JSON.stringify(hostKey)} in the config's hosts`, 'NotConfigured');
    const asked = request.to ?? renderPathTemplate(supim.sourceTemplate, day);
    const to = remoteTarget(asked);
    if (to === undefined) throw refuse(`--to must be an absolute path: ${JSON.stringify(asked)}`, 'BadRequest');
    const root = restoreRootOf(to, restoreRoots(config, hostKey));
    if (!root.ok)
      throw refuse(
        `refusing to restore to ${to} on ${hostKey}: ${root.why} (hosts.${hostKey}.restoreRoots)`,
        'NotAllowed',
      );
    const plain = join(supim.destinationRoot, day.label.slice(0, 4), day.label.slice(5));
    const startedAt = now().toISOString();
    const result: DayRestoreResult = {
      ...blankDayRestore(request, startedAt),
      day: day.label,
      host: hostKey,
      from: plain,
      to,
    };
    const engine = config.store?.engine ?? 'files';
    if (request.from === 'restic' && engine !== 'restic')
      throw refuse('--from restic: store.engine is not restic, there is no repository', 'NotConfigured');
    // Off-site (its name only; location and password from config): that repository's newest snapshot.
    const offsite = request.offsite !== undefined ? offsiteEnvOf(config, request.offsite) : undefined;
    let listed = request.from === 'restic' || offsite ? undefined : await listLocalFiles(plain);
    // The repository, when asked or when the plain folder is gone: its newest snapshot of the day, staged.
    const staged =
      listed === undefined && request.from !== 'store' && (engine === 'restic' || offsite)
        ? // Heartbeats go on while restic restores; what an earlier attempt pushed stays in them.
          await whileHeartbeating(
            () => Context.current().info.heartbeatDetails ?? { done: [], bytesDone: 0 },
            (signal) => stageDaySnapshot(config, day.label, signal, offsite),
          )
        : undefined;
    try {
      if (staged) {
        const where = offsite ? ` (off-site ${offsite.name})` : '';
        [result.from, result.snapshot] = [
          `restic snapshot ${staged.snapshot} of ${staged.folder}${where}`,
          staged.snapshot,
        ];
        listed = await listLocalFiles(staged.dir);
        if (listed === undefined)
          throw refuse(`snapshot ${staged.snapshot} holds no folder ${staged.folder}`, 'NoSuchDay');
      }
      return await pushDay(request, result, listed, staged?.dir ?? plain, root.root, hostKey, to);
    } finally {
      await staged?.remove();
    }
  }

  async function pushDay(
    request: DayRestoreRequest,
    result: DayRestoreResult,
    listed: { files: string[]; skipped: string[] } | undefined,
    from: string,
    rootDir: string,
    hostKey: string,
    to: string,
  ): Promise<DayRestoreResult> {
    if (listed === undefined) throw refuse(`the backup has no folder ${from} for ${result.day}`, 'NoSuchDay');
    const { files, skipped } = listed;
    result.filesInBackup = files.length;
    if (skipped.length) [result.skippedCount, result.skipped] = [skipped.length, skipped.slice(0, MAX_LISTED)];
    const previous = Context.current().info.heartbeatDetails as DayRestoreProgress | undefined;
    const progress: DayRestoreProgress = { done: previous?.done ?? [], bytesDone: previous?.bytesDone ?? 0 };
    const doneBefore = new Set(progress.done);
    const local = new LocalTree(from);
    const ssh = await openSsh(hostKey);
    try {
      return await whileHeartbeating(
        () => progress,
        async () => {
          const there = await listRemoteTree(ssh, to, Context.current().cancellationSignal);
          if (there.state === 'not-a-folder') throw refuse(`${to} on ${hostKey} ${there.detail}`, 'BadRequest');
          const present = new Set(there.state === 'present' ? there.entries.map((e) => e.path) : []);
          for (const file of files) {
            if (present.has(file) && !doneBefore.has(file)) {
              if (!request.overwrite) {
                result.existing.push(file);
                continue;
              }
              result.overwritten.push(file);
            }
            if (doneBefore.has(file)) continue;
            const path = local.pathOf(file);
            const info = await stat(path);
            const sha256 = (await hashFile(createHash('sha256'), path)).digest('hex');
            const resumeFrom = previous?.current?.path === file ? previous.current.offset : 0;
            progress.current = { path: file, offset: resumeFrom };
            const sent = await uploadFile({
              ssh,
              localPath: path,
              remotePath: `${to}/${file}`,
              root: rootDir,
              size: info.size,
              expectedSha256: sha256,
              resumeFrom,
              mtime: info.mtimeMs / 1000,
              maxBytesPerSecond: config.transfer.maxBytesPerSecond,
              signal: Context.current().cancellationSignal,
              onProgress: (done) => {
                progress.current = { path: file, offset: done };
              },
            });
            progress.done.push(file);
            progress.current = undefined;
            progress.bytesDone += sent.bytesTransferred;
          }
          await removeEmptyPartialDir(ssh, rootDir);
          // Counted over every attempt: a resumed restore also reports what the crashed one sent.
          result.filesRestored = progress.done.length;
          result.bytesRestored = progress.bytesDone;
          result.ok = result.existing.length === 0 && skipped.length === 0;
          const reasons = [
            ...(result.existing.length
              ? [
                  `${result.existing.length} file(s) already on ${hostKey} under ${to} were left alone (use --overwrite to replace them)`,
                ]
              : []),
            ...(skipped.length ? [`${skipped.length} name(s) in the backup are not regular files, not restored`] : []),
          ];
          if (reasons.length) result.reason = reasons.join('; ');
          return { ...result, finishedAt: now().toISOString() };
        },
      );
    } finally {
      ssh.close();
    }
  }

  return { restoreSupimDay };
}

/**
 * Relative paths of the regular files under `dir` (symlinks not followed), and of what else is there but
 * folders (skipped, each named with its type); undefined if `dir` is absent. Every name is the source's:
 * the daily copy keeps its partial files elsewhere.
 */
async function listLocalFiles(dir: string): Promise<{ files: string[]; skipped: string[] } | undefined> {
  try {
    const entries = await readdir(dir, { recursive: true, withFileTypes: true });
    const path = (e: (typeof entries)[number]) => join(e.parentPath, e.name).slice(dir.length + 1);
    return {
      files: entries
        .filter((e) => e.isFile())
        .map(path)
        .sort(),
      skipped: entries
        .filter((e) => !e.isFile() && !e.isDirectory())
        .map((e) => `${path(e)} (${e.isSymbolicLink() ? 'symlink' : 'not a regular file'}, not restored)`)
        .sort(),
    };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
