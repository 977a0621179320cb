import { formatBytes } from '../../../domain/format';
import type { PreparedDisk } from '../../../domain/vm-contracts';
import type { ResticImage, VmImage } from '../../../domain/weekly-summary';
import type { Pushed } from '../../saga/compensations';
import type { Cycle } from '../cycle';
import { withinBudget } from '../downtime';

export interface StoredDisks {
  images: ResticImage[];
  /** Forgets the disk snapshots until the record makes them a set. */
  partials: Pushed;
}

/**
 * store.engine restic: each disk streamed from the hypervisor into the repository, hashed at both ends:
 * the frozen disk itself (overlay), the disk of the shut-off VM (offline, streamWhileDown: abandoned when
 * the downtime budget runs out), or the image the offline sequence verified in the image area.
 */
export const storeDisks = (
  c: Cycle,
  disks: PreparedDisk[],
  from?: VmImage[] | 'shut-off',
): Promise<StoredDisks> =>
  c.step.run('storing', async () => {
    const { vm, stamp, result } = c;
    const partials = c.undo.push('discard', 'forget the snapshots of a set never recorded', () =>
      c.act.store.discardResticPartials(vm, stamp),
    );
    const images: ResticImage[] = [];
    const down = from === 'shut-off' && c.downtime.off;
    await withinBudget(down ? c.downtime.imagingSeconds() : Infinity, async () => {
      for (const disk of disks) {
        const image = Array.isArray(from) ? from.find((i) => i.disk === disk.target) : undefined;
        const options = {
          summary: `VM ${vm}: disk ${disk.target}, ${formatBytes(disk.virtualSize)} into the repository`,
        };
        const args: Parameters<typeof c.act.storeLong.storeFrozenDisk> = image
          ? [vm, stamp, disk, image]
          : from === 'shut-off'
            ? [vm, stamp, disk, from]
            : [vm, stamp, disk];
        images.push(await c.act.storeLong.storeFrozenDisk.executeWithOptions(options, args));
      }
    });
    result.stored = images;
    if (!Array.isArray(from)) result.images = images;
    return { images, partials };
  });

/** The repository checked and the set's record stored: from here on it counts (and retention may act). */
export const recordSet = (c: Cycle, { images, partials }: StoredDisks) =>
  c.step.run('recording', async () => {
    await c.act.storeLong.recordResticSet(c.vm, c.stamp, images);
    partials.drop();
  });
