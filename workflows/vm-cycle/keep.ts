import type { PreparedDisk } from '../../domain/vm-contracts';
import type { Cycle } from './cycle';
import { pull } from './phases/pull';
import { retain } from './phases/retention';
import { verify } from './phases/verify';

/** Both sequences end so: the images verified, stored, and only then old sets removed. */
export async function keep(c: Cycle, disks: PreparedDisk[]): Promise<void> {
  const verified = await verify(c, disks);
  if (c.settings.store) await pull(c, verified);
  await retain(c);
}
