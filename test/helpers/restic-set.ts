import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { newManifest, type ManifestImage } from '../../adapters/image-sets/manifest';
import type { ResticImageSets } from '../../adapters/image-sets/restic-image-sets';

/**
 * A set of one raw disk in a restic repository, as the weekly run leaves it: the disk streamed in
 * (storeDisk), then the set's record naming its snapshot. Returns the record's image.
 */
export async function storeOneDiskSet(
  sets: ResticImageSets,
  set: { vm: string; stamp: string; disk: string; data: Buffer },
): Promise<ManifestImage> {
  const { vm, stamp, disk, data } = set;
  const stored = await sets.storeDisk({ vm, stamp, disk, bytes: data.length, stdin: Readable.from([data]) });
  const image: ManifestImage = {
    disk,
    file: `${disk}.raw`,
    format: 'raw',
    bytes: data.length,
    virtualSize: data.length,
    sha256: createHash('sha256').update(data).digest('hex'),
    restic: { snapshot: stored.snapshotId, dataAdded: stored.dataAdded },
  };
  await sets.writeManifest(vm, stamp, newManifest({ vm, stamp, images: [image] }));
  return image;
}
