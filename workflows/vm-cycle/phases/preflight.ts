import type { PreparedDisk } from '../../../domain/vm-contracts';
import { noteStoreDeletions, SkipVm, type Cycle } from '../cycle';
import { takeOverLeftOff } from './left-off';

/**
 * Before any VM goes down: it exists, its disks are known, the image area (and the store) have room. Not
 * enough: the VM is skipped, untouched. Returns its disks.
 */
export async function preflight(c: Cycle): Promise<PreparedDisk[]> {
  const { result } = c;
  const found = await c.step.run('preflight', () => c.act.remote.preflightVm(c.vm, c.stamp));
  result.deleted.push(...found.deleted);
  result.imageAreaFreeBefore = found.freeBytes;
  if (found.state !== 'missing') result.wasRunning = found.state === 'running' || !!found.heldDown;
  if (found.heldDown) await takeOverLeftOff(c, found.heldDown);
  if (!found.ok) throw new SkipVm(found.reason);
  if (c.settings.store) await storeRoom(c, found.disks);
  return found.disks;
}

async function storeRoom(c: Cycle, disks: PreparedDisk[]): Promise<void> {
  const allocated = disks.reduce((sum, d) => sum + d.allocatedBytes, 0);
  const room = await c.step.run('store-preflight', () => c.act.store.storePreflight(c.vm, c.stamp, allocated));
  noteStoreDeletions(c, room);
  c.result.storeFreeBefore = room.freeBytes;
  c.result.previousImageBytes = room.previousBytes;
  if (!room.ok) throw new SkipVm(room.reason);
}
