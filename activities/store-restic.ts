import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { Config } from '../config/schema';
import type { PreparedDisk } from '../domain/vm-contracts';
import type { ResticImage, VmImage } from '../domain/weekly-summary';
import { diskIntoRepository } from '../adapters/transfer/disk-into-repository';
import { newManifest } from '../adapters/image-sets/manifest';
import { requireStoreRoot } from '../adapters/local/store-root';
import { requireSection } from './config-section';
import type { Services } from './services';

interface StoringProgress {
  vm: string;
  disk: string;
  step: 'storing';
  bytesDone: number;
  bytes: number;
}

/**
 * store.engine restic: each frozen disk read once on the hypervisor (raw, hashed there) and streamed into
 * the repository (hashed again on arrival); the set recorded after a structure check; retention as forget +
 * prune. The files engine's activities are in store.ts.
 */
export function createResticStoreActivities({ config, services }: { config: Config; services: Services }) {
  const sets = () => services.resticSets();

  /**
   * One disk frozen under its overlay (or of a VM that is off), straight into the repository as
   * `/<vm>/<disk>.raw`. A retry starts the stream again: whatever an earlier attempt stored of this disk is
   * forgotten first, and the packs it uploaded are reused (restic deduplicates them), so only what was
   * never indexed goes again. A hash that differs, or a disk that changed meanwhile, stores nothing.
   */
  async function storeFrozenDisk(
    vm: string,
    stamp: string,
    disk: PreparedDisk,
    from?: VmImage | 'shut-off',
  ): Promise<ResticImage> {
    const image = typeof from === 'object' ? from : undefined;
    await requireStoreRoot(requireSection(config.store, 'store').root);
    const repo = sets();
    await repo.restic.unlockStale(); // a killed attempt's lock: removed only if its process is gone
    await repo.restic.forgetSnapshots((await repo.diskSnapshots(vm, stamp, disk.target)).map((s) => s.id));
    const progress: StoringProgress = { vm, disk: disk.target, step: 'storing', bytesDone: 0, bytes: disk.virtualSize };
    return services.hypervisors.heartbeating(
      async ({ overlays, ssh, driver }) => {
        // An image the offline sequence made and verified in the image area, or the VM's frozen disk itself.
        const source = image
          ? { source: image.path, format: image.format ?? 'qcow2', type: 'file' }
          : { source: disk.source, format: disk.format, type: disk.type };
        if (from === 'shut-off') {
          // streamWhileDown: the disk itself, read while the guest cannot write it.
          const { state, detail } = await driver.state(vm);
          if (state !== 'shut-off')
            throw ApplicationFailure.nonRetryable(`${vm} is ${detail}, not shut off: not storing`, 'VmNotShutOff');
        } else if (!image) {
          const { active, disks } = await overlays.onOverlays(vm);
          if (active && !disks.some((d) => d.base === disk.source))
            throw ApplicationFailure.nonRetryable(
              `${vm} runs on ${disk.source} itself, not on an overlay: not storing`,
              'NotOnOverlay',
            );
        }
        const before = await overlays.fileVersion(source.source);
        const into = await diskIntoRepository(
          ssh,
          source,
          repo,
          { vm, stamp, disk: disk.target, bytes: disk.virtualSize },
          { onProgress: (done) => (progress.bytesDone = done), signal: Context.current().cancellationSignal },
        );
        const { stored, sourceSha256: sha256, arrivedSha256: local, arrivedBytes: arrived } = into;
        const forgetIt = () => repo.restic.forgetSnapshots([stored.snapshotId]);
        const changed = (await overlays.fileVersion(source.source)) !== before;
        if (sha256 !== local || arrived !== disk.virtualSize || changed) {
          await forgetIt();
          const why = changed
            ? `${source.source} changed while it was read`
            : `the hypervisor read ${disk.virtualSize} bytes hashing ${sha256}, ${arrived} bytes hashing ${local} arrived`;
          throw ApplicationFailure.retryable(`${vm} ${disk.target}: ${why}; snapshot forgotten`, 'StoredDiskMismatch');
        }
        return {
          disk: disk.target,
          path: `${repo.root}#${stored.snapshotId.slice(0, 8)}:/${vm}/${disk.target}.raw`,
          format: 'raw',
          sourcePath: disk.source,
          bytes: disk.virtualSize,
          virtualSize: disk.virtualSize,
          sha256,
          snapshot: stored.snapshotId,
          dataAdded: stored.dataAdded,
        };
      },
      () => progress,
    );
  }

  /**
   * The set counts from here: after the repository's structure check passed with its disks in it, the
   * record (disk map, hashes, snapshots, the domain definition without secrets) is stored as the set's last
   * snapshot. Called after the overlays are merged, so the definition names the VM's own disks.
   */
  async function recordResticSet(vm: string, stamp: string, images: ResticImage[]): Promise<string> {
    const repo = sets();
    const check = await repo.restic.check();
    if (!check.ok)
      throw ApplicationFailure.nonRetryable(
        `restic check of ${repo.root} failed after storing ${vm} ${stamp}: ${check.output.slice(-2000)}`,
        'RepositoryDamaged',
      );
    const domainXml = await services.hypervisors.heartbeating(({ driver }) => driver.definition(vm));
    return repo.writeManifest(
      vm,
      stamp,
      newManifest({
        vm,
        stamp,
        domainXml,
        images: images.map((i) => ({
          disk: i.disk,
          file: `${i.disk}.raw`,
          format: 'raw',
          bytes: i.bytes,
          virtualSize: i.virtualSize,
          sha256: i.sha256,
          source: { ...(i.sourcePath ? { path: i.sourcePath } : {}), sha256: i.sha256 },
          restic: { snapshot: i.snapshot, dataAdded: i.dataAdded },
        })),
      }),
    );
  }

  /** The compensation: disk snapshots of a set that got no record are forgotten (a recorded set is kept). */
  async function discardResticPartials(vm: string, stamp: string): Promise<void> {
    await sets().removePartials(vm, stamp);
  }

  return { storeFrozenDisk, recordResticSet, discardResticPartials };
}
