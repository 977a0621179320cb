import type { Pushed } from '../../saga/compensations';
import type { Cycle } from '../cycle';

/** imaging: overlay — the overlays merged back into the disks, live; the merge owed is then done. */
export const mergeOverlays = (c: Cycle, merge: Pushed) =>
  c.step.run('merging', async () => {
    const outcome = await c.act.merging.mergeOverlays(c.vm);
    merge.drop();
    if (outcome.resumedFromIoError) {
      c.result.reason = 'the guest was paused by an I/O error while on its overlays (filesystem full?); resumed';
    }
  });
