import { noteStoreDeletions, type Cycle } from '../cycle';

/** Only after the new set is verified (and stored): old sets removed from the store, then the image area. */
export async function retain(c: Cycle): Promise<void> {
  const { vm, stamp, result } = c;
  if (c.settings.store) {
    // restic: forget, then prune (which may run long on a large repository).
    const store = c.settings.storeEngine === 'restic' ? c.act.storeLong : c.act.store;
    const outcome = await c.step.run('store-retention', () => store.applyStoreRetention(vm, stamp));
    noteStoreDeletions(c, outcome);
    result.storeFreeAfter = outcome.freeBytes;
  }
  const outcome = await c.step.run('retention', () => c.act.remote.applyRetention(vm, c.settings.keepImages, stamp));
  result.deleted.push(...outcome.deleted);
  result.imageAreaFreeAfter = outcome.freeBytes;
}
