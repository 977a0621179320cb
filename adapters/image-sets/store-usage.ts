import { stat, statfs } from 'node:fs/promises';
import type { Config } from '../../config/schema';
import type { StoreUsage } from '../../domain/store-usage';
import { LocalImageSets } from './local-image-sets';

/**
 * Size and free space of the file systems that hold this machine's backups (the daily data and the VM
 * image store; one entry when they share a file system), and what the image sets retention keeps take.
 * Only a worker on the backup host can see them: elsewhere, or before the first backup, there is nothing.
 */
export async function measureStores(config: Config): Promise<StoreUsage[]> {
  if (!config.worker.storeHost) return [];
  const roots = [
    ...(config.supim ? [{ store: 'daily' as const, path: config.supim.destinationRoot }] : []),
    ...(config.store ? [{ store: 'images' as const, path: config.store.root }] : []),
  ];
  const byDevice = new Map<number, StoreUsage>();
  for (const { store, path } of roots) {
    const device = await stat(path).then(
      (s) => s.dev,
      () => undefined,
    );
    if (device === undefined) continue;
    let usage = byDevice.get(device);
    if (!usage) {
      const fs = await statfs(path);
      usage = { stores: [], path, totalBytes: fs.blocks * fs.bsize, freeBytes: fs.bavail * fs.bsize };
      byDevice.set(device, usage);
    }
    usage.stores.push(store);
    if (store === 'images') {
      const images = new LocalImageSets(path);
      let bytes = 0;
      let sets = 0;
      for (const vm of await images.listVms()) {
        for (const set of await images.listSets(vm)) {
          bytes += set.allocatedBytes;
          sets += 1;
        }
      }
      Object.assign(usage, { imageSetBytes: bytes, imageSets: sets });
    }
  }
  return [...byDevice.values()];
}
