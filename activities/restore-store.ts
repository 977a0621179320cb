import { join } from 'node:path';
import { Context } from '@temporalio/activity';
import type { Config } from '../config/schema';
import {
  nextVmToTest,
  type PushedImage,
  type RestoreTestLog,
  type RestoreTestResult,
  type StoredSetForRestore,
} from '../domain/restore';
import { arrivalPath, type PushProgress, type RestoreTarget } from '../domain/restore-plan';
import { requireStoreRoot } from '../adapters/local/store-root';
import { readRestoreTestLog, recordRestoreTestResult } from '../adapters/image-sets/restore-test-log';
import { checkImageFile, StoredSetProblem, verifiedFilesSet } from '../adapters/image-sets/set-images';
import { MANIFEST, ManifestError, type ManifestImage } from '../adapters/image-sets/manifest';
import { PASSABLE_UMASK } from '../adapters/ssh/remote-modes';
import { QemuImg } from '../adapters/hypervisor/qemu-img';
import { quote } from '../adapters/ssh/shell-quote';
import { uploadFile } from '../adapters/transfer/stream-upload';
import {
  resticImageFrom,
  resticSetForRestore,
  resticVms,
  ResticSetProblem,
} from '../adapters/image-sets/restic-restore-source';
import { ResticImageSets } from '../adapters/image-sets/restic-image-sets';
import { offsiteEnvOf } from '../adapters/restic/offsite';
import { Restic } from '../adapters/restic/restic';
import { refuse } from './failures';
import { whileHeartbeating } from './heartbeat';
import { createDayRestoreActivities } from './restore-day';
import type { Services } from './services';

/** The restore activities that read the backup store's disk: they run on the store task queue. */
export const RESTORE_STORE_ACTIVITIES = [
  'readStoredSet',
  'pushImage',
  'pickVmToTest',
  'recordRestoreTest',
  'readRestoreTests',
  'restoreSupimDay',
] as const;

export interface RestoreDeps {
  config: Config;
  /** The adapters, built once by the worker. */
  services: Services;
  now?: () => Date;
}

/**
 * The restore activities of the store task queue (RESTORE_STORE_ACTIVITIES, polled only on the backup
 * host): they read the store's disk, and push from it.
 */
export function createRestoreStoreActivities({ config, services, now = () => new Date() }: RestoreDeps) {
  const store = services.storeSets;
  const onRestic = () => config.store?.engine === 'restic';
  const offsiteSets = new Map<string, ResticImageSets>();
  /** The primary repository's sets, or those of off-site repository `offsite` (its name; refused when unknown). */
  const resticSetsOf = (offsite?: string): ResticImageSets => {
    if (offsite === undefined) return services.resticSets();
    let sets = offsiteSets.get(offsite);
    if (!sets) offsiteSets.set(offsite, (sets = new ResticImageSets(new Restic(offsiteEnvOf(config, offsite)))));
    return sets;
  };

  /** restic: the set's record from the repository (or off-site one), each disk snapshot present with its size. */
  async function readResticSet(vm: string, stamp?: string, offsite?: string): Promise<StoredSetForRestore> {
    const { stamp: chosen, manifest } = await resticSetForRestore(resticSetsOf(offsite), vm, stamp).catch(
      (err: unknown) => {
        if (err instanceof ResticSetProblem)
          throw refuse(err.message, err.kind === 'missing' ? 'NoSuchSet' : 'DamagedSet');
        if (err instanceof ManifestError)
          throw refuse(`${vm}/${stamp ?? 'newest'}/${MANIFEST} ${err.message}`, 'DamagedSet');
        throw err;
      },
    );
    return {
      vm,
      stamp: chosen,
      images: manifest.images,
      ...(manifest.domainXml ? { domainXml: manifest.domainXml } : {}),
    };
  }

  /**
   * The set a restore uses: the given stamp, or the newest verified one; every image present, right size.
   * `offsite`: read from that off-site repository (a key of config `offsite`) instead of the store.
   */
  async function readStoredSet(vm: string, stamp?: string, offsite?: string): Promise<StoredSetForRestore> {
    if (onRestic() || offsite !== undefined) return readResticSet(vm, stamp, offsite);
    let found: Awaited<ReturnType<typeof verifiedFilesSet>>;
    try {
      found = await verifiedFilesSet(store(), vm, stamp);
      for (const image of found.manifest.images) await checkImageFile(found.dir, `${vm}/${found.stamp}`, image);
    } catch (err) {
      if (err instanceof StoredSetProblem)
        throw refuse(err.message, err.kind === 'missing' ? 'NoSuchSet' : 'DamagedSet');
      throw err;
    }
    const { stamp: chosen, manifest } = found;
    return {
      vm,
      stamp: chosen,
      images: manifest.images,
      ...(manifest.domainXml ? { domainXml: manifest.domainXml } : {}),
    };
  }

  /**
   * Pushes one stored image to the hypervisor as a stream, resumed from the last heartbeat after a crash
   * or a cut link; the hypervisor hashes it on arrival and only a copy with the manifest's SHA-256 is
   * renamed to `target.pushPath`.
   */
  async function pushImage(
    vm: string,
    stamp: string,
    image: ManifestImage,
    target: RestoreTarget,
    offsite?: string,
  ): Promise<PushedImage> {
    const hv = services.hypervisors.hv;
    // restic (the image names its snapshot): `restic dump` streamed, from the resume point on; from the
    // off-site repository `offsite` when named.
    if (offsite !== undefined && !image.restic)
      throw refuse(`${vm}/${stamp}/${image.disk}: the record names no snapshot to read off-site`, 'DamagedSet');
    const source = image.restic
      ? { source: (start: number) => resticImageFrom(resticSetsOf(offsite), vm, image, start) }
      : { localPath: join(store().setDir(vm, stamp), image.file) };
    const previous = Context.current().info.heartbeatDetails as PushProgress | undefined;
    const arrival = arrivalPath(target);
    const progress: PushProgress = {
      image: arrival,
      offset: previous?.image === arrival ? previous.offset : 0,
      size: image.bytes,
    };
    const ssh = await services.openSsh(hv.host);
    try {
      const pushed = await whileHeartbeating(
        () => progress,
        () =>
          uploadFile({
            ssh,
            ...source,
            remotePath: arrival,
            umask: PASSABLE_UMASK, // a guest may run from these disks
            size: image.bytes,
            expectedSha256: image.sha256,
            resumeFrom: progress.offset,
            maxBytesPerSecond: config.transfer.maxBytesPerSecond,
            signal: Context.current().cancellationSignal,
            onProgress: (done) => {
              progress.offset = done;
            },
          }),
      );
      if (target.arrivesAs) {
        // The verified raw bytes become the disk's own format beside the final name, then take it.
        const converting = `${target.pushPath}.converting`;
        const line = QemuImg.convertLine(
          { path: arrival, format: target.arrivesAs },
          { path: converting, format: target.format },
        );
        await ssh.run(
          {
            shell: `${PASSABLE_UMASK} && rm -f ${quote(converting)} && ${line} && mv -fT ${quote(converting)} ${quote(target.pushPath)} && rm -f ${quote(arrival)}`,
          },
          { signal: Context.current().cancellationSignal },
        );
      }
      return {
        disk: image.disk,
        path: target.pushPath,
        format: target.format,
        bytes: image.bytes,
        sha256: pushed.sha256,
        resumedAt: pushed.resumedAt,
      };
    } finally {
      ssh.close();
    }
  }

  async function readRestoreTests(): Promise<RestoreTestLog> {
    return readRestoreTestLog(store().root);
  }

  /** The VM whose newest set is boot-tested next: never tested first, else the one tested longest ago. */
  async function pickVmToTest(): Promise<string | undefined> {
    const images = onRestic() ? services.resticSets() : store();
    const candidates: string[] = [];
    for (const vm of onRestic() ? await resticVms(services.resticSets()) : await store().listVms()) {
      if ((await images.listSets(vm)).some((s) => s.verified)) candidates.push(vm);
    }
    return nextVmToTest(candidates, await readRestoreTests());
  }

  async function recordRestoreTest(result: RestoreTestResult): Promise<void> {
    await requireStoreRoot(store().root); // an unmounted disk must not get a stray file
    await recordRestoreTestResult(store().root, result);
  }

  return {
    ...createDayRestoreActivities({ config, openSsh: services.openSsh, now }),
    readStoredSet,
    pushImage,
    pickVmToTest,
    recordRestoreTest,
    readRestoreTests,
  } satisfies Record<(typeof RESTORE_STORE_ACTIVITIES)[number], unknown>;
}
