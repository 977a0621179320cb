import type { PreparedDisk } from '../../domain/vm-contracts';
import type { Cycle } from './cycle';
import { pull } from './phases/pull';
import { retain } from './phases/retention';
import { recordSet, storeDisks } from './phases/store-disks';
import { verify } from './phases/verify';

/** Both sequences end so (overlay with the files engine): the images verified, stored, and only then old sets removed. */
export async function keep(c: Cycle, disks: PreparedDisk[]): Promise<void> {
  const verified = await verify(c, disks);
  if (c.settings.storeEngine === 'restic') {
    // The image verified in the image area is streamed into the repository as raw bytes.
    await recordSet(c, await storeDisks(c, disks, verified.images));
  } else if (c.settings.store) await pull(c, verified);
  await retain(c);
}
