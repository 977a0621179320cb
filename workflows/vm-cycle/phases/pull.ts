import { formatBytes } from '../../../domain/format';
import type { Cycle } from '../cycle';
import type { VerifiedSet } from './verify';

/** The verified images copied into the backup store (the VM runs again), hashes compared, set recorded. */
export const pull = (c: Cycle, { images, domainXml }: VerifiedSet) =>
  c.step.run('pulling', async () => {
    const { vm, stamp, result } = c;
    for (const image of images) {
      const options = { summary: `VM ${vm}: disk ${image.disk}, ${formatBytes(image.bytes)}` };
      result.stored.push(await c.act.storeLong.pullImage.executeWithOptions(options, [vm, stamp, image]));
    }
    await c.act.store.recordStoredSet(vm, stamp, result.stored, images, domainXml);
  });
