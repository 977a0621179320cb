import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import type { Config } from '../config/schema';
import { dayDestination, type DayRestic, type DayStatus } from '../domain/daily-summary';
import type { CalendarDay } from '../domain/julian-day';
import { requireStoreRoot } from '../adapters/local/store-root';
import { backupPaths } from '../adapters/restic/restic-paths';
import { Restic } from '../adapters/restic/restic';
import { releaseLock } from '../adapters/run-lock';
import { requireSection } from './config-section';
import { whileHeartbeating } from './heartbeat';
import { takeDayLockOfRun } from './day-lock-of-run';
import { resticOptions } from './services';

export interface SupimResticDeps {
  config: Config;
  now?: () => Date;
  temporalClient?: () => Promise<Client>;
}

/** The tags of a day's snapshots: `day=yyyy-ddd` finds them, `kind=supim-day` tells them from VM images. */
export const dayTags = (label: string) => [`day=${label}`, 'kind=supim-day'];

/** store.engine restic: the daily job's day folders as snapshots in the repository (store task queue). */
export function createSupimResticActivities({ config, now = () => new Date(), temporalClient }: SupimResticDeps) {
  /**
   * The day's plain folder (complete: its copy said `copied` or `complete`) as a new snapshot tagged
   * day=yyyy-ddd. A day the copy found unchanged (`complete`) that has a snapshot already gets none: a
   * re-run adds nothing. Under the day's lock, so no other run's copy writes the folder meanwhile.
   */
  async function storeSupimDayInRestic(day: CalendarDay, copy: DayStatus): Promise<DayRestic> {
    const supim = requireSection(config.supim, 'supim');
    const restic = new Restic(resticOptions(config));
    const folder = dayDestination(supim.destinationRoot, day);
    await requireStoreRoot(supim.destinationRoot);
    const { lock, owner, taken } = await takeDayLockOfRun(supim.destinationRoot, day.label, temporalClient, now());
    if (!taken.acquired)
      return { status: 'skipped', reason: `another run holds this day: ${taken.holder.owner.workflowId}` };
    const progress = { phase: 'listing snapshots', bytesDone: 0 };
    try {
      return await whileHeartbeating(
        () => progress,
        async (signal) => {
          const tags = dayTags(day.label);
          const newest = (await restic.snapshots({ tags: [tags[0]!] })).at(-1);
          // Unchanged only if nothing in the folder changed after that snapshot was started (a copy whose
          // snapshot failed, then a run that found the day complete, must still store it).
          if (copy === 'complete' && newest && (await lastChangeMs(folder)) < Date.parse(newest.time))
            return { status: 'unchanged', snapshot: newest.short_id, bytesAdded: 0 };
          progress.phase = 'backing up';
          const done = await backupPaths(restic.env, {
            paths: [folder],
            tags,
            signal,
            onProgress: (bytes) => (progress.bytesDone = bytes),
          });
          return { status: 'stored', snapshot: done.snapshotId.slice(0, 8), bytesAdded: done.dataAdded };
        },
      );
    } finally {
      await releaseLock(lock, owner);
    }
  }

  return { storeSupimDayInRestic };
}

/** The newest status change (ctime: writes, renames, mode changes) of a folder and everything in it. */
async function lastChangeMs(folder: string): Promise<number> {
  const entries = await readdir(folder, { recursive: true, withFileTypes: true });
  const paths = [folder, ...entries.map((e) => join(e.parentPath, e.name))];
  let newest = 0;
  for (const path of paths) newest = Math.max(newest, (await lstat(path)).ctimeMs);
  return newest;
}
