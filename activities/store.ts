import { rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { Config } from '../config/schema';
import type { VmImage } from '../domain/weekly-summary';
import type { SshSession } from '../adapters/ssh/ssh-session';
import { zstdPaysFor } from '../adapters/transfer/stream-download';
import { requireSection } from './config-section';
import { fetchRemoteFile, type FetchRequest } from '../adapters/transfer/fetch-remote-file';
import { whileHeartbeating } from './heartbeat';
import { applyRetention, makeRoom, type RetentionOutcome } from '../adapters/image-sets/image-sets';
import { IMAGE_FILE, newManifest } from '../adapters/image-sets/manifest';
import { makeFolders, storeFileMode } from '../adapters/local/file-mode';
import { partialPathOf } from '../adapters/local/local-tree';
import { requireStoreRoot } from '../adapters/local/store-root';
import type { Services } from './services';

export interface StoreDeps {
  config: Config;
  /** The adapters, built once by the worker. */
  services: Services;
}

export interface StorePreflight {
  ok: boolean;
  reason?: string;
  freeBytes: number;
  requiredBytes: number;
  deleted: string[];
  /** With store.retention.dryRun: the sets that would have been deleted to make room. */
  wouldDelete?: string[];
  /** Bytes of the newest verified set already in the store. */
  previousBytes?: number;
}

export type { RetentionOutcome };

/** What a pull reports in its heartbeats: the next attempt continues from `offset`. */
export interface PullProgress {
  image: string;
  offset: number;
  size: number;
}

export function createStoreActivities({ config, services }: StoreDeps) {
  const mode = storeFileMode(config.permissions);
  const store = services.storeSets;
  /** auto: zstd when the hypervisor has it and a sample of the image shrinks enough (see zstdPaysFor), said in the log. */
  const wireFor = async (ssh: SshSession, image: VmImage): Promise<FetchRequest['via']> => {
    const { transport, compression } = requireSection(config.store, 'store');
    if (transport === 'sftp') return 'sftp';
    if (compression !== 'auto') return compression === 'zstd' ? 'zstd' : 'stream';
    const zstd = await zstdPaysFor(ssh, image.path, image.bytes);
    Context.current().log.info(`${image.path}: zstd on the wire ${zstd ? 'on' : 'off'} (store.compression: auto)`);
    return zstd ? 'zstd' : 'stream';
  };

  /**
   * Before a VM goes down: can the store take this week's images? Expected size is the larger of the VM's
   * allocated disk size and its last stored set, plus the margin. Room is made only by removing sets older
   * than the newest verified one; with retention.dryRun they are only listed, and the VM waits for room.
   */
  async function storePreflight(vm: string, stamp: string, allocatedBytes: number): Promise<StorePreflight> {
    if (!config.store) return { ok: true, reason: 'no store configured', freeBytes: 0, requiredBytes: 0, deleted: [] };
    const { dryRun } = config.store.retention;
    await requireStoreRoot(config.store.root); // an unmounted disk must not look like an empty store
    if (config.store.engine === 'restic') return resticPreflight(vm, allocatedBytes);
    const images = store();
    const lastWeek = (await images.listSets(vm)).filter((s) => s.verified).at(-1)?.allocatedBytes;
    const requiredBytes = Math.max(allocatedBytes, lastWeek ?? 0) + config.store.spaceMarginBytes;
    const room = await makeRoom(images, vm, stamp, requiredBytes, dryRun);
    const short = `not enough space in ${images.where}: ${room.freeBytes} bytes free, ${requiredBytes} needed`;
    return {
      ok: room.ok,
      ...(room.ok
        ? {}
        : { reason: room.wouldDelete.length > 0 ? `${short} (store.retention.dryRun: nothing deleted)` : short }),
      freeBytes: room.freeBytes,
      requiredBytes,
      deleted: room.deleted,
      ...(room.wouldDelete.length > 0 ? { wouldDelete: room.wouldDelete } : {}),
      ...(lastWeek !== undefined ? { previousBytes: lastWeek } : {}),
    };
  }

  /**
   * store.engine restic: the new set needs at most the VM's allocated bytes (nothing deduplicated) plus the
   * margin. Room is not made by deleting sets here: forgotten data returns only with a prune, which runs
   * with retention after a newer set is verified.
   */
  async function resticPreflight(vm: string, allocatedBytes: number): Promise<StorePreflight> {
    const repo = services.resticSets();
    const freeBytes = await repo.freeBytes();
    const requiredBytes = allocatedBytes + requireSection(config.store, 'store').spaceMarginBytes;
    const lastWeek = (await repo.listSets(vm)).filter((s) => s.verified).at(-1)?.bytes;
    const ok = freeBytes >= requiredBytes;
    return {
      ok,
      ...(ok ? {} : { reason: `not enough space in ${repo.where}: ${freeBytes} bytes free, ${requiredBytes} needed` }),
      freeBytes,
      requiredBytes,
      deleted: [],
      ...(lastWeek !== undefined ? { previousBytes: lastWeek } : {}),
    };
  }

  /**
   * Pulls one verified image from the hypervisor into the store (one stream, or SFTP, per store.transport),
   * SHA-256 while streaming, resumed from the last heartbeat after a crash or a cut link, compared with the
   * hypervisor's hash before it is renamed into place. A copy that differs is deleted.
   */
  async function pullImage(vm: string, stamp: string, image: VmImage): Promise<VmImage> {
    const hv = services.hypervisors.hv;
    const name = basename(image.path);
    if (!IMAGE_FILE.test(name))
      throw ApplicationFailure.nonRetryable(`refusing image name ${JSON.stringify(name)}`, 'BadImageName');
    const images = store();
    await requireStoreRoot(images.root);
    const dir = images.setDir(vm, stamp);
    await makeFolders(dir, mode);
    const previous = Context.current().info.heartbeatDetails as PullProgress | undefined;
    const progress: PullProgress = {
      image: name,
      offset: previous?.image === name ? previous.offset : 0,
      size: image.bytes,
    };
    const ssh = await services.openSsh(hv.host);
    const localPath = join(dir, name);
    try {
      await whileHeartbeating(
        () => progress,
        async () =>
          fetchRemoteFile({
            ssh,
            via: await wireFor(ssh, image),
            remotePath: image.path,
            localPath,
            size: image.bytes,
            resumeFrom: progress.offset,
            expectedSha256: image.sha256,
            transfer: config.transfer,
            fileMode: mode,
            signal: Context.current().cancellationSignal,
            onProgress: (done) => {
              progress.offset = done;
            },
          }),
      );
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
      // No resume into a full disk: free what this copy took, leave every older set as it was.
      await rm(partialPathOf(localPath), { force: true });
      throw ApplicationFailure.nonRetryable(
        `the store ${images.root} filled up while pulling ${image.path}; partial copy removed`,
        'StoreFull',
      );
    } finally {
      ssh.close();
    }
    return { ...image, path: localPath };
  }

  /**
   * The store's manifest: the stored files' own facts, the hypervisor's hashes and disk paths, and the domain
   * definition (secrets stripped) a restore defines. Written last: the set then counts as verified in the store.
   */
  async function recordStoredSet(
    vm: string,
    stamp: string,
    stored: VmImage[],
    source: VmImage[],
    domainXml?: string,
  ): Promise<string> {
    return store().writeManifest(
      vm,
      stamp,
      newManifest({
        vm,
        stamp,
        ...(domainXml ? { domainXml } : {}),
        images: stored.map((s) => {
          const from = source.find((i) => i.disk === s.disk);
          return {
            disk: s.disk,
            file: basename(s.path),
            format: s.format ?? (s.path.endsWith('.raw') ? 'raw' : 'qcow2'),
            bytes: s.bytes,
            ...(s.allocatedBytes !== undefined ? { allocatedBytes: s.allocatedBytes } : {}),
            virtualSize: s.virtualSize,
            sha256: s.sha256,
            source: { ...(from?.sourcePath ? { path: from.sourcePath } : {}), sha256: from?.sha256 ?? s.sha256 },
          };
        }),
      }),
    );
  }

  /** The store's GFS policy for one VM after a verified pull; with dryRun it only lists what it would delete. */
  async function applyStoreRetention(vm: string, stamp: string): Promise<RetentionOutcome> {
    const { retention: policy, engine } = requireSection(config.store, 'store');
    if (engine !== 'restic') return applyRetention(store(), vm, policy, stamp, policy.dryRun);
    const repo = services.resticSets();
    // Heartbeats while restic forgets and prunes (silent for minutes on a large repository). What an earlier
    // attempt forgot is in its heartbeats: a retry reports it, and prunes, although it finds nothing to forget.
    const ctx = Context.current();
    const earlier = (ctx.info.heartbeatDetails as { forgotten?: string[] } | undefined)?.forgotten ?? [];
    let forgotten = earlier;
    return whileHeartbeating(
      () => ({ forgotten }),
      async () => {
        const outcome = await applyRetention(repo, vm, policy, stamp, policy.dryRun);
        forgotten = [...new Set([...earlier, ...outcome.deleted])];
        outcome.deleted = forgotten;
        if (forgotten.length > 0) {
          ctx.heartbeat({ forgotten });
          await repo.restic.unlockStale();
          const before = outcome.freeBytes;
          await repo.restic.prune();
          outcome.freeBytes = await repo.freeBytes();
          outcome.deleted = [...forgotten, `prune returned ${Math.max(0, outcome.freeBytes - before)} bytes`];
        }
        return outcome;
      },
    );
  }

  return { storePreflight, pullImage, recordStoredSet, applyStoreRetention };
}
