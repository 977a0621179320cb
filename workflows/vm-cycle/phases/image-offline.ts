import type { PreparedDisk } from '../../../domain/vm-contracts';
import type { Cycle } from '../cycle';
import { withinBudget } from '../downtime';

/** imaging: offline — each disk copied while the VM is off, abandoned when the downtime budget runs out. */
export const imageOffline = (c: Cycle, disks: PreparedDisk[]) =>
  c.step.run('imaging', async () => {
    const { vm, stamp } = c;
    const partials = c.undo.push('discard', 'end remote copies and remove partial images', () =>
      c.act.remote.discardPartials(vm, stamp),
    );
    const seconds = c.downtime.imagingSeconds();
    await withinBudget(c.downtime.off ? seconds : Infinity, async () => {
      for (const disk of disks) {
        const options = { summary: `VM ${vm}: disk ${disk.target}` };
        await c.act.imaging.createImage.executeWithOptions(options, [vm, stamp, disk, Math.max(1, seconds)]);
      }
    });
    partials.drop();
  });
