import type { PreparedDisk } from '../../../domain/vm-contracts';
import { SkipVm, type Cycle } from '../cycle';

/** imaging: overlay — room for the overlays' growth; false: a disk overlays cannot cover, imaged offline. */
export const overlaysFit = (c: Cycle, disks: PreparedDisk[]) =>
  c.step.run('overlay-preflight', async () => {
    const room = await c.act.remote.overlayPreflight(c.vm, disks);
    if (room.offlineInstead) c.result.reason = room.reason;
    else if (!room.ok) throw new SkipVm(room.reason);
    return room.ok;
  });
