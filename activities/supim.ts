import { ApplicationFailure } from '@temporalio/common';
import type { Config } from '../config/schema';
import { storeTaskQueue } from '../adapters/temporal/temporal-connection';
import { blankDayResult, type DailySettings, type DayResult } from '../domain/daily-summary';
import type { CalendarDay } from '../domain/julian-day';
import { RemoteCommandError } from '../adapters/ssh/remote-command-error';
import { listRemoteTree } from '../adapters/ssh/remote-tree';
import type { SshSession } from '../adapters/ssh/ssh-session';
import { requireSection } from './config-section';
import { LocalSteps, whileHeartbeating } from './heartbeat';
import { LocalTree, UnsafeLocalPathError } from '../adapters/local/local-tree';
import { DayCopy } from '../adapters/transfer/day-copy';
import {
  filesToCopy,
  newDayCopyProgress,
  notReadyReason,
  syncFileSystem,
  type DayCopyOutcome,
} from '../adapters/transfer/day-copy-rules';
import { storeFileMode } from '../adapters/local/file-mode';
import { requireStoreRoot } from '../adapters/local/store-root';
import { releaseLock } from '../adapters/run-lock';
import { takeDayLockOfRun } from './day-lock-of-run';
import type { Client } from '@temporalio/client';

export interface SupimDeps {
  config: Config;
  /** Opens the SSH session to a configured host; the activity closes it. */
  openSsh: (hostKey: string) => Promise<SshSession>;
  /** Injected for tests; defaults to the wall clock. */
  now?: () => Date;
  /** To ask whether the run holding a day's lock is still open. */
  temporalClient?: () => Promise<Client>;
  /** Flushes the store's file system once a day's files are written; defaults to syncfs (`sync -f`). */
  flushStore?: (path: string) => Promise<void>;
}

const MAX_LISTED = 20;

const listed = (paths: string[]) =>
  paths.slice(0, 3).join(', ') + (paths.length > 3 ? ` and ${paths.length - 3} more` : '');

/** The day from what became of its files: a retryable problem fails the attempt; then failed, changed, copied. */
function judge(
  outcome: DayCopyOutcome,
  finish: (status: DayResult['status'], reason?: string, extra?: Partial<DayResult>) => DayResult,
): DayResult {
  const changed = outcome.changed.length ? `changed during the copy: ${listed(outcome.changed)}` : undefined;
  if (outcome.retryable.length) {
    // Every file that could be copied now has its real name; the retry copies only the rest.
    const first = outcome.retryable[0]!;
    throw ApplicationFailure.retryable(
      `${outcome.retryable.length} file(s) not copied yet, e.g. ${first.path}: ${first.reason}`,
      'DayCopyIncomplete',
    );
  }
  if (outcome.failed.length) {
    const reason = `${outcome.failed.length} file(s) could not be copied: ${outcome.failed
      .slice(0, 3)
      .map((f) => `${f.path}: ${f.reason}`)
      .join('; ')}${changed ? `; ${changed}` : ''}`;
    return finish('failed', reason, {
      failedFiles: outcome.failed.slice(0, MAX_LISTED),
      failedCount: outcome.failed.length,
    });
  }
  if (changed) return finish('not-yet', changed);
  return finish('copied');
}

export function createSupimActivities({
  config,
  openSsh,
  now = () => new Date(),
  temporalClient,
  flushStore = syncFileSystem,
}: SupimDeps) {
  const { transfer } = config;
  const mode = storeFileMode(config.permissions);

  async function getDailySettings(): Promise<DailySettings> {
    const supim = requireSection(config.supim, 'supim');
    const { timeZone, daysBack, sourceTemplate, destinationRoot, verify, expectedBy } = supim;
    return {
      timeZone,
      daysBack,
      sourceTemplate,
      destinationRoot,
      verify,
      ...(expectedBy ? { expectedBy } : {}),
      heartbeatTimeoutSeconds: transfer.heartbeatTimeoutSeconds,
      ...(config.store?.engine === 'restic' ? { resticDays: true } : {}),
      storeTaskQueue: storeTaskQueue(config),
    };
  }

  /** Probes one julian day on the compute host and copies whatever is missing or differs. Idempotent. */
  async function backupSupimDay(day: CalendarDay): Promise<DayResult> {
    const supim = requireSection(config.supim, 'supim');
    const started = now().getTime();
    const result = blankDayResult(day, await getDailySettings(), 'complete');
    const finish = (status: DayResult['status'], reason?: string, extra: Partial<DayResult> = {}): DayResult => ({
      ...result,
      ...extra,
      status,
      ...(reason ? { reason } : {}),
      durationMs: now().getTime() - started,
    });
    const progress = newDayCopyProgress();

    // Before anything else: an unmounted backup disk must fail loudly, not fill the system disk.
    await requireStoreRoot(supim.destinationRoot);
    // One run per day: two daily runs whose windows overlap never copy the same day at once.
    const { lock, owner, taken } = await takeDayLockOfRun(supim.destinationRoot, day.label, temporalClient, now());
    if (!taken.acquired) return finish('not-yet', `another run is copying this day: ${taken.holder.owner.workflowId}`);
    const ssh = await openSsh(supim.host).catch(async (err: unknown) => {
      await releaseLock(lock, owner);
      throw err;
    });
    try {
      // A host that accepts a command and then sends nothing would hold the day for ever: heartbeats go on.
      // Waiting on the store's own disk (a flush behind other writers) is not the host's silence.
      const step = () => `${progress.phase} ${result.source}`;
      const localSteps = new LocalSteps();
      const stall = {
        seconds: transfer.stallSeconds,
        local: localSteps,
        progress: () => `${ssh.bytesReceived} ${progress.bytesDone} ${progress.filesDone} ${progress.phase}`,
        stalled: () =>
          new RemoteCommandError(
            `${ssh.label}: ${step()}: nothing received for ${transfer.stallSeconds} s (transfer.stallSeconds); stopped`,
            { kind: 'stalled', host: ssh.label, command: step() },
          ),
      };
      return await whileHeartbeating(
        () => progress,
        async (signal) => {
          // A stopped attempt lets go of the host at once: what waits on it unwinds, and whileHeartbeating
          // waits for what still writes into the store before the lock below is let go.
          signal.addEventListener('abort', () => ssh.close(), { once: true });
          const tree = await listRemoteTree(ssh, result.source, signal);
          if (tree.state === 'missing') return finish('not-yet', 'source folder does not exist yet');
          if (tree.state === 'not-a-folder') return finish('failed', `source ${tree.detail}`);

          const files = tree.entries.filter((e) => e.type === 'file');
          const ignored = tree.entries.filter((e) => e.type === 'symlink' || e.type === 'other');
          result.filesInSource = files.length;
          result.bytesInSource = files.reduce((sum, f) => sum + f.size, 0);
          result.skippedCount = ignored.length;
          result.skipped = ignored.slice(0, MAX_LISTED).map((e) => `${e.path} (${e.type}, not followed)`);
          const notReady = notReadyReason(files, tree.remoteNow, supim);
          if (notReady) return finish('not-yet', notReady);

          const local = new LocalTree(result.destination, mode);
          const { files: changed, stored } = filesToCopy(files, local);
          if (changed.length === 0) return finish('complete');

          const copy = new DayCopy({
            ssh,
            source: result.source,
            local,
            stored,
            supim,
            transfer,
            result,
            progress,
            now,
            signal,
            mode,
            flushStore,
            localStep: (work) => localSteps.run(work),
          });
          // One more listing once all is read: a file that changed while it was copied is not backed up.
          const after = await copy.stage(changed, async () => {
            const tree = await listRemoteTree(ssh, result.source, signal);
            return tree.state === 'present' ? tree.entries : [];
          });
          await copy.verifyChecksums();
          const outcome = await copy.commit(after);
          result.filesCopied = outcome.committed;
          result.bytesCopied = outcome.bytesTransferred;
          return judge(outcome, finish);
        },
        stall,
      );
    } catch (err) {
      if (err instanceof UnsafeLocalPathError)
        throw ApplicationFailure.nonRetryable(err.message, 'UnsafeLocalPathError');
      throw err;
    } finally {
      ssh.close();
      await releaseLock(lock, owner);
    }
  }

  return { getDailySettings, backupSupimDay };
}
