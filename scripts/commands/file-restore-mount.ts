import { createHash } from 'node:crypto';
import { lstat, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  fuseMountedAt,
  GuestfishError,
  GuestfishSession,
  guestmount,
  guestunmount,
} from '../../adapters/guestfs/guestfish';
import { mountGuest } from '../../adapters/guestfs/guest-view';
import { DUMP_FOLDER } from '../../adapters/image-sets/set-images';
import type { Config } from '../../config/schema';
import { UsageError } from './command-kit';
import { openSetImages, type GuestSelection } from './file-restore';
import { processAlive } from '../../adapters/local/process-alive';

/**
 * `restore mount` / `restore umount`: a read-only view of a stored set (guestmount --ro) until it is
 * unmounted. What a mount holds (restic dumps) is recorded in `<store.root>/.cluster-backup-file-restore/
 * mounts/<hash of the mount point>.json` (0600) so that `restore umount` removes it afterwards.
 */
export interface MountRecord {
  mountpoint: string;
  vm: string;
  stamp: string;
  mounted: { device: string; mountpoint: string }[];
  /** The guestmount process serving the mount (waited for after guestunmount, before dumps are deleted). */
  pid?: number;
  /** Temporary disk images (restic dumps) to delete once unmounted. */
  temporary: string[];
}

function recordsDir(config: Config): string {
  if (!config.store) throw new UsageError('the config has no store section (store.root)');
  return join(config.store.root, DUMP_FOLDER, 'mounts');
}

function recordPath(config: Config, mountpoint: string): string {
  return join(recordsDir(config), `${createHash('sha256').update(mountpoint).digest('hex').slice(0, 24)}.json`);
}

export async function mountSet(config: Config, selection: GuestSelection, target: string): Promise<MountRecord> {
  const mountpoint = resolve(target);
  const st = await lstat(mountpoint).catch(() => undefined);
  if (!st?.isDirectory()) throw new UsageError(`mount point ${mountpoint} is not a folder`);
  if ((await readdir(mountpoint)).length > 0) throw new UsageError(`mount point ${mountpoint} is not empty`);
  const images = await openSetImages(config, selection);
  try {
    // One appliance to find what to mount where (the same rules as restore file), then guestmount's own.
    const session = await GuestfishSession.open(images.disks);
    let mounted;
    try {
      mounted = (
        await mountGuest(
          session,
          images.disks.map((d) => d.disk),
          selection.fs,
        ).catch((err: unknown) => {
          if (err instanceof GuestfishError && ['NoSuchFilesystem', 'WhichFilesystem'].includes(err.type))
            throw new UsageError(err.message);
          throw err;
        })
      ).mounted;
    } finally {
      await session.close();
    }
    await mkdir(recordsDir(config), { recursive: true, mode: 0o700 });
    const pidFile = `${recordPath(config, mountpoint)}.pid`;
    await guestmount(images.disks, mounted, mountpoint, pidFile);
    const pid = Number(await readFile(pidFile, 'utf8').catch(() => ''));
    await rm(pidFile, { force: true });
    const temporary = images.disks.map((d) => d.path).filter((p) => p.includes(`/${DUMP_FOLDER}/`));
    const record: MountRecord = {
      mountpoint,
      vm: images.vm,
      stamp: images.stamp,
      mounted,
      ...(pid > 0 ? { pid } : {}),
      temporary,
    };
    await writeFile(recordPath(config, mountpoint), JSON.stringify(record, null, 2), { mode: 0o600 });
    return record;
  } catch (err) {
    await images.release();
    throw err;
  }
}

export async function unmountSet(config: Config, target: string): Promise<MountRecord | { mountpoint: string }> {
  const mountpoint = resolve(target);
  const path = recordPath(config, mountpoint);
  const record = await readFile(path, 'utf8').then(
    (t) => JSON.parse(t) as MountRecord,
    () => undefined,
  );
  if (!(await fuseMountedAt(mountpoint))) {
    if (!record) throw new UsageError(`${mountpoint} is not mounted (by restore mount or anything else)`);
    // Unmounted by hand (fusermount -u): what the mount held is still removed below.
  } else await guestunmount(mountpoint);
  if (record?.pid) for (let i = 0; i < 100 && processAlive(record.pid); i++) await sleep(100);
  const dumps = join(config.store!.root, DUMP_FOLDER) + '/';
  for (const file of record?.temporary ?? [])
    if (resolve(file).startsWith(dumps)) await rm(resolve(file, '..'), { recursive: true, force: true });
  await rm(path, { force: true });
  return record ?? { mountpoint };
}
