import { patched } from '@temporalio/workflow';
import type { PreparedDisk } from '../../domain/vm-contracts';
import type { Cycle } from './cycle';
import { keep } from './keep';
import { imageOffline } from './phases/image-offline';
import { lock } from './phases/lock';
import { preflight } from './phases/preflight';
import { retain } from './phases/retention';
import { start } from './phases/start';
import { recordSet, storeDisks } from './phases/store-disks';
import { stop } from './phases/stop';

/** imaging: offline — the VM is down while its disks are copied. */
export async function offlineCycle(c: Cycle): Promise<void> {
  await lock(c);
  const disks = await preflight(c);
  await offlineImaging(c, disks);
}

/** A checked VM: down (unless already off), imaged, up again if it ran, then kept. */
export async function offlineImaging(c: Cycle, disks: PreparedDisk[]): Promise<void> {
  if (c.result.wasRunning && !c.downtime.off) await stop(c);
  if (c.policy.streamWhileDown && c.settings.storeEngine === 'restic' && patched('offline-stream-while-down')) {
    // Each disk read once, from the shut-off VM straight into the repository: no image-area copy.
    const stored = await storeDisks(c, disks, 'shut-off');
    if (c.result.wasRunning) await start(c);
    await recordSet(c, stored);
    return retain(c);
  }
  await imageOffline(c, disks);
  if (c.result.wasRunning) await start(c);
  await keep(c, disks);
}
