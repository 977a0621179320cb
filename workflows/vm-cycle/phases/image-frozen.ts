import type { PreparedDisk } from '../../../domain/vm-contracts';
import type { Cycle } from '../cycle';

/** imaging: overlay — each frozen disk copied under its overlay while the VM runs. */
export const imageFrozen = (c: Cycle, disks: PreparedDisk[]) =>
  c.step.run('imaging-frozen', async () => {
    const { vm, stamp } = c;
    const partials = c.undo.push('discard', 'end remote copies and remove partial images', () =>
      c.act.remote.discardPartials(vm, stamp),
    );
    for (const disk of disks) {
      const options = { summary: `VM ${vm}: disk ${disk.target} (frozen under its overlay)` };
      await c.act.checking.createFrozenImage.executeWithOptions(options, [vm, stamp, disk, 24 * 3600]);
    }
    partials.drop();
  });
