import { resticOptions } from '../../activities/services';
import { repositoryNumbers, type RepositoryNumbers } from '../../adapters/restic/repository-stats';
import { Restic } from '../../adapters/restic/restic';
import type { Config } from '../../config/schema';
import { describeRepositoryNumbers } from './store-verify-restic';

export type RepositoryStatus = RepositoryNumbers | { repository: string; error: string };

/**
 * store.engine restic: the repository's numbers for `status` (undefined for the files engine). A repository
 * that cannot be read (locked by a check, not mounted here) is a line in the status, not a failed status.
 */
export async function resticRepositoryStatus(config: Config): Promise<RepositoryStatus | undefined> {
  if (config.store?.engine !== 'restic' || !config.store.restic) return undefined;
  const restic = new Restic(resticOptions(config));
  try {
    return await repositoryNumbers(restic, config.store.root, config.store.restic.verifySubsets);
  } catch (err) {
    return { repository: restic.repository, error: (err as Error).message.split('\n')[0]! };
  }
}

export function describeRepositoryStatus(status: RepositoryStatus): string[] {
  if ('error' in status) return [`restic repository ${status.repository}: cannot be read here: ${status.error}`];
  return describeRepositoryNumbers(status);
}
