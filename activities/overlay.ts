import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { VmDisk } from '../adapters/hypervisor/driver';
import { folderOf, type MergeProgress, type OverlayDisk } from '../adapters/hypervisor/overlays';
import type { RemoteProgress } from '../adapters/ssh/remote-process';
import type { HypervisorSession } from './hypervisor-session';
import type { HypervisorDeps, PreparedDisk } from './hypervisor';

export interface OverlayRoom {
  ok: boolean;
  reason?: string;
  /** The VM cannot be imaged on overlays: image it offline instead (none today: file and block disks both can). */
  offlineInstead?: boolean;
  /** Per filesystem that will hold overlays: free bytes and what this VM needs there. */
  filesystems: { path: string; freeBytes: number; requiredBytes: number }[];
}

export interface MergeOutcome {
  /** Targets merged back into their original files. */
  merged: string[];
  /** Overlay files deleted (merged ones and strays a crash left). */
  removed: string[];
  /** The guest had been paused by an I/O error (its overlay's filesystem filled up) and was resumed. */
  resumedFromIoError: boolean;
}

/** How often the copy looks at the guest: an overlay that fills its filesystem pauses it (werror=enospc). */
const WATCH_MS = 2000;

/**
 * Activities of `imaging: overlay` (see adapters/hypervisor/overlays.ts): room for the overlays, overlays on
 * a shut-off VM, imaging the frozen originals while the VM runs, and the live merge, which is also the
 * compensation and what a later run or the guardian does for a VM found on overlays.
 */
export function createOverlayActivities({ services }: Pick<HypervisorDeps, 'services'>) {
  const withOverlays = <T>(use: (h: HypervisorSession) => Promise<T>, details?: () => unknown) =>
    services.hypervisors.heartbeating(use, details);

  /**
   * Room for the overlays' growth while the copy runs (`overlayReserveBytes` per filesystem holding an
   * overlay: a disk file's, or the image area's for a block device), checked before the VM goes down. Where
   * that filesystem is the image area's, the images count too.
   */
  async function overlayPreflight(vm: string, disks: PreparedDisk[]): Promise<OverlayRoom> {
    return withOverlays(async ({ overlays, sets, hv }) => {
      const { overlayReserveBytes } = services.vmPolicy(hv.host, vm);
      await sets.freeBytes(); // creates the image area if it is not there yet
      const imageArea = await overlays.freeSpace(sets.root);
      const imageBytes = disks.reduce((sum, d) => sum + d.allocatedBytes, 0) + hv.spaceMarginBytes;
      const byDevice = new Map<string, OverlayRoom['filesystems'][number]>();
      for (const disk of disks) {
        const path = disk.type === 'block' ? sets.root : folderOf(disk.source);
        const room = disk.type === 'block' ? imageArea : await overlays.freeSpace(path);
        const sharesImageArea = room.device === imageArea.device;
        byDevice.set(room.device, {
          path,
          freeBytes: room.freeBytes,
          requiredBytes: overlayReserveBytes + (sharesImageArea ? imageBytes : 0),
        });
      }
      const filesystems = [...byDevice.values()];
      const short = filesystems.find((f) => f.freeBytes < f.requiredBytes);
      return {
        ok: !short,
        filesystems,
        ...(short && {
          reason: `not enough space for the overlays in ${short.path}: ${short.freeBytes} bytes free, ${short.requiredBytes} needed (overlayReserveBytes ${overlayReserveBytes}${short.requiredBytes > overlayReserveBytes ? ' + the images, same filesystem as the image area' : ''})`,
        }),
      };
    });
  }

  /** Overlays on every disk of the shut-off VM; it may then start at once. Idempotent for one stamp. */
  async function createOverlays(vm: string, stamp: string, disks: VmDisk[]): Promise<OverlayDisk[]> {
    return withOverlays(
      ({ overlays, sets }) => overlays.create(vm, disks, stamp, sets.root),
      () => ({ vm, step: 'overlays' }),
    );
  }

  /**
   * Images the original disk under the VM's overlay while the VM runs (or while it is off). Refuses a disk
   * the guest may be writing. The guest is watched meanwhile: paused by an I/O error (its overlay filled
   * the filesystem) fails the step at once, so the compensation merges and resumes it.
   */
  async function createFrozenImage(
    vm: string,
    stamp: string,
    disk: PreparedDisk,
    timeoutSeconds: number,
  ): Promise<string> {
    const progress: Partial<RemoteProgress> & { vm: string; disk: string; step: 'imaging'; overlayBytes: number } = {
      vm,
      disk: disk.target,
      step: 'imaging',
      overlayBytes: 0,
    };
    return withOverlays(
      async ({ overlays, driver, sets, imaging, hv, ssh }) => {
        const { active, disks } = await overlays.onOverlays(vm);
        const frozen = disks.find((d) => d.base === disk.source);
        if (active && !frozen) {
          throw ApplicationFailure.nonRetryable(
            `${vm} runs on ${disk.source} itself, not on an overlay: not imaging`,
            'NotOnOverlay',
          );
        }
        const copy = new AbortController();
        const cancelled = Context.current().cancellationSignal;
        const onCancel = () => copy.abort();
        cancelled.addEventListener('abort', onCancel, { once: true });
        let paused: string | undefined;
        const watch = setInterval(() => {
          void (async () => {
            const state = await driver.state(vm);
            if (frozen) progress.overlayBytes = await overlays.allocatedBytes(frozen.overlay);
            if (state.state === 'paused') {
              paused = state.detail;
              copy.abort();
            }
          })().catch(() => undefined); // a missed look is retried by the next one
        }, WATCH_MS);
        const final = sets.imagePath(vm, stamp, disk, disk.imageFormat);
        try {
          const before = await overlays.fileVersion(disk.source);
          await imaging.createImage(disk, disk.imageFormat, final, {
            timeoutSeconds,
            stallSeconds: hv.stallSeconds,
            signal: copy.signal,
            onProgress: (p) => Object.assign(progress, p),
          });
          // A merge (an operator's, or a compensation) under the copy would have torn the image.
          const still = (await overlays.onOverlays(vm)).disks.some((d) => d.base === disk.source);
          if ((await overlays.fileVersion(disk.source)) !== before || (frozen && !still)) {
            await ssh.run(['rm', '-f', '--', final]);
            throw ApplicationFailure.retryable(
              `${disk.source} changed while it was imaged; image discarded`,
              'DiskChangedWhileImaged',
            );
          }
          return final;
        } catch (err) {
          if (paused) {
            throw ApplicationFailure.nonRetryable(
              `${vm} was paused while its disks were copied (${paused}): its overlay's filesystem may be full`,
              'VmPausedOnOverlay',
            );
          }
          throw err;
        } finally {
          clearInterval(watch);
          cancelled.removeEventListener('abort', onCancel);
        }
      },
      () => progress,
    );
  }

  /**
   * Merges every overlay of ours the VM runs on back into its original and deletes the overlay files, and
   * those a crash left unused. The VM never stops: a running VM is merged live, one that is off (shut down
   * while on its overlays) into its originals, with a new definition. Idempotent; the normal step, the
   * compensation, and what the next run's preflight and the guardian do for a VM left on overlays.
   */
  async function mergeOverlays(vm: string, bandwidthMiBps?: number): Promise<MergeOutcome> {
    let progress: MergeProgress | undefined;
    return withOverlays(
      async ({ overlays, driver, sets, imaging, hv }) => {
        const outcome: MergeOutcome = { merged: [], removed: [], resumedFromIoError: false };
        if ((await driver.state(vm)).state === 'missing') return outcome; // the preflight reports it
        const { active, disks } = await overlays.onOverlays(vm);
        const { overlayMergeTimeoutSeconds, overlayMergeBandwidthMiBps } = services.vmPolicy(hv.host, vm);
        // A copy whose worker died still reads the originals: merging under it would tear its image.
        if (disks.length > 0) await imaging.endAll(sets.vmDir(vm));
        if (active) {
          for (const disk of disks) {
            await overlays.mergeLive(vm, disk, {
              timeoutSeconds: overlayMergeTimeoutSeconds,
              bandwidthMiBps: bandwidthMiBps ?? overlayMergeBandwidthMiBps,
              onProgress: (p) => (progress = p),
            });
          }
        } else if (disks.length > 0) {
          await overlays.mergeOffline(vm, disks);
        }
        outcome.merged = disks.map((d) => d.target);
        outcome.removed = disks.map((d) => d.overlay);
        const inUse = (await overlays.onOverlays(vm)).disks.map((d) => d.overlay);
        for (const stray of await overlays.strayOverlays(await driver.disks(vm), inUse, sets.root)) {
          await overlays.removeOverlayFile(stray);
          outcome.removed.push(stray);
        }
        const state = await driver.state(vm);
        if (state.state === 'paused' && /I\/O error/i.test(state.detail)) {
          await driver.resume(vm, 'paused');
          outcome.resumedFromIoError = true;
        }
        return outcome;
      },
      () => ({ vm, step: 'merging', ...progress }),
    );
  }

  /** VMs on the hypervisor running (or defined) on overlays of ours: for the guardian and the preflight. */
  async function findVmsOnOverlays(): Promise<string[]> {
    return withOverlays(async ({ overlays, driver }) => {
      const found: string[] = [];
      for (const { name } of await driver.listVms()) {
        try {
          if ((await overlays.onOverlays(name)).disks.length > 0) found.push(name);
        } catch (err) {
          // One VM whose overlay cannot be read (or is not ours after all) must not hide the others.
          Context.current().log.warn('cannot tell whether a VM runs on overlays', { vm: name, error: String(err) });
        }
      }
      return found;
    });
  }

  return { overlayPreflight, createOverlays, createFrozenImage, mergeOverlays, findVmsOnOverlays };
}
