import { resticOptions } from '../activities/services';
import { repositoryNumbers } from '../adapters/restic/repository-stats';
import { Restic } from '../adapters/restic/restic';
import type { Config } from '../config/schema';
import { formatBytes } from '../domain/format';

/** The demo's line about the restic repository: how much the sets hold raw, what is stored, the dedup ratio. */
export async function repositoryLine(config: Config): Promise<string> {
  if (config.store?.engine !== 'restic' || !config.store.restic) return 'store: plain files (no repository)';
  const numbers = await repositoryNumbers(
    new Restic(resticOptions(config)),
    config.store.root,
    config.store.restic.verifySubsets,
  );
  return (
    `restic repository ${numbers.repository}: ${numbers.snapshots} snapshots, ${formatBytes(numbers.restoreBytes)} ` +
    `of sets stored in ${formatBytes(numbers.packBytes)} on disk (dedup ratio ${numbers.dedupRatio.toFixed(2)}x; ` +
    'run `npm start` again: an unchanged VM adds almost nothing)'
  );
}
