import { setMaxListeners } from 'node:events';
import { mkdir } from 'node:fs/promises';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { Config } from '../config/schema';
import { storeTaskQueue } from '../config/temporal-connection';
import { blankDayResult, type DailySettings, type DayResult } from '../domain/daily-summary';
import type { CalendarDay } from '../domain/julian-day';
import { listRemoteTree } from '../adapters/ssh/remote-tree';
import type { SshSession } from '../adapters/ssh/ssh-session';
import { requireSection } from './config-section';
import { whileHeartbeating } from './heartbeat';
import { LocalTree, UnsafeLocalPathError } from '../adapters/local/local-tree';
import { DayCopy, filesToCopy, newDayCopyProgress, notReadyReason } from '../adapters/local/day-copy';

export interface SupimDeps {
  config: Config;
  /** Opens the SSH session to a configured host; the activity closes it. */
  openSsh: (hostKey: string) => Promise<SshSession>;
  /** Injected for tests; defaults to the wall clock. */
  now?: () => Date;
}

const MAX_LISTED = 20;

export function createSupimActivities({ config, openSsh, now = () => new Date() }: SupimDeps) {
  const { transfer } = config;

  async function getDailySettings(): Promise<DailySettings> {
    const supim = requireSection(config.supim, 'supim');
    const { timeZone, daysBack, sourceTemplate, destinationRoot, verify } = supim;
    return {
      timeZone,
      daysBack,
      sourceTemplate,
      destinationRoot,
      verify,
      heartbeatTimeoutSeconds: transfer.heartbeatTimeoutSeconds,
      storeTaskQueue: storeTaskQueue(config),
    };
  }

  /** Probes one julian day on the compute host and copies whatever is missing or differs. Idempotent. */
  async function backupSupimDay(day: CalendarDay): Promise<DayResult> {
    const supim = requireSection(config.supim, 'supim');
    const started = now().getTime();
    const result = blankDayResult(day, await getDailySettings(), 'complete');
    const finish = (status: DayResult['status'], reason?: string): DayResult => ({
      ...result,
      status,
      ...(reason ? { reason } : {}),
      durationMs: now().getTime() - started,
    });
    const signal = Context.current().cancellationSignal;
    setMaxListeners(0, signal); // every file in flight listens for cancellation
    const progress = newDayCopyProgress();

    const ssh = await openSsh(supim.host);
    try {
      return await whileHeartbeating(
        () => progress,
        async () => {
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

          const local = new LocalTree(result.destination);
          const changed = await filesToCopy(files, local);
          if (changed.length === 0) return finish('complete');

          await mkdir(result.destination, { recursive: true });
          const copy = new DayCopy(ssh, result.source, local, supim, transfer, result, progress, now, signal);
          await copy.copy(changed);
          await copy.verify(changed);
          return finish('copied');
        },
      );
    } catch (err) {
      if (err instanceof UnsafeLocalPathError)
        throw ApplicationFailure.nonRetryable(err.message, 'UnsafeLocalPathError');
      throw err;
    } finally {
      ssh.close();
    }
  }

  return { getDailySettings, backupSupimDay };
}
