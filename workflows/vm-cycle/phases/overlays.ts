import type { PreparedDisk } from '../../../domain/vm-contracts';
import type { Pushed } from '../../saga/compensations';
import type { Cycle } from '../cycle';

/** imaging: overlay — qcow2 overlays put on the shut-off VM's disks. Returns the merge owed. */
export const putOverlays = (c: Cycle, disks: PreparedDisk[]): Promise<Pushed> =>
  c.step.run('overlays', async () => {
    // Pushed before the overlays go on: a VM left on them (running or not) is merged back on every way out.
    const merge = c.undo.push('merge', 'merge the overlays back', () => c.act.merging.mergeOverlays(c.vm));
    await c.act.remote.createOverlays(c.vm, c.stamp, disks);
    return merge;
  });
