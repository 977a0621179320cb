import type { Cycle } from './cycle';
import { keep } from './keep';
import { offlineImaging } from './offline';
import { imageFrozen } from './phases/image-frozen';
import { lock } from './phases/lock';
import { mergeOverlays } from './phases/merge';
import { mergeLeftOverlays } from './phases/merge-left';
import { overlaysFit } from './phases/overlay-preflight';
import { preflight } from './phases/preflight';
import { putOverlays } from './phases/overlays';
import { retain } from './phases/retention';
import { recordSet, storeDisks } from './phases/store-disks';
import { start } from './phases/start';
import { stop } from './phases/stop';

/** imaging: overlay — the VM is down only while overlays go on; its frozen disks are imaged while it runs. */
export async function overlayCycle(c: Cycle): Promise<void> {
  await lock(c);
  await mergeLeftOverlays(c);
  const disks = await preflight(c);
  // A VM found off, or with a disk overlays cannot cover, is imaged offline.
  if (!c.result.wasRunning || !(await overlaysFit(c, disks))) return offlineImaging(c, disks);
  if (!c.downtime.off) await stop(c);
  const merge = await putOverlays(c, disks);
  await start(c);
  if (c.settings.storeEngine === 'restic') {
    // Each frozen disk read once, straight into the repository: no image-area copy.
    const stored = await storeDisks(c, disks);
    await mergeOverlays(c, merge);
    await recordSet(c, stored);
    return retain(c);
  }
  await imageFrozen(c, disks);
  // Merged before the set is recorded: the definition kept with it names the disks, not the overlays.
  await mergeOverlays(c, merge);
  await keep(c, disks);
}
