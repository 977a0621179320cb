import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from '../config/schema';
import { makeFolders, storeFileMode } from '../adapters/local/file-mode';
import { requireStoreRoot } from '../adapters/local/store-root';
import { Restic } from '../adapters/restic/restic';
import { restoreSnapshot } from '../adapters/restic/restic-paths';
import type { ResticEnv } from '../adapters/restic/restic-process';
import { requireSection } from './config-section';
import { refuse } from './failures';
import { resticOptions } from './services';

/** A day's snapshot restored on the backup host, to be pushed from there; `remove` deletes it. */
export interface StagedDay {
  snapshot: string;
  /** The day folder as it was backed up (the snapshot's path). */
  folder: string;
  /** Where its files are now. */
  dir: string;
  remove(): Promise<void>;
}

/**
 * The newest snapshot tagged day=<label>, restored (restic checks each file it writes against the
 * repository; the primary, or `from`: an off-site one) into <store.root>/.restic-restore/<label>-<uuid>/ (folders in config.permissions modes).
 */
export async function stageDaySnapshot(
  config: Config,
  label: string,
  signal?: AbortSignal,
  from: ResticEnv = resticOptions(config),
): Promise<StagedDay> {
  const store = requireSection(config.store, 'store');
  const restic = new Restic(from);
  const newest = (await restic.snapshots({ tags: [`day=${label}`] })).at(-1);
  if (!newest)
    throw refuse(`the restic repository ${restic.repository} has no snapshot tagged day=${label}`, 'NoSuchDay');
  const folder = newest.paths[0];
  if (newest.paths.length !== 1 || !folder?.startsWith('/'))
    throw refuse(`snapshot ${newest.short_id} is not of one day folder: ${newest.paths.join(', ')}`, 'NoSuchDay');
  await requireStoreRoot(store.root);
  const staging = join(store.root, '.restic-restore', `${label}-${randomUUID()}`);
  await makeFolders(staging, storeFileMode(config.permissions));
  const remove = () => rm(staging, { recursive: true, force: true });
  try {
    await restoreSnapshot(restic.env, { snapshotId: newest.id, target: staging, signal });
  } catch (err) {
    await remove();
    throw err;
  }
  return { snapshot: newest.short_id, folder, dir: join(staging, folder), remove };
}
