import { createHypervisorActivities } from './hypervisor';
import { createReportActivities } from './report';
import { createRestoreActivities } from './restore';
import { createStoreActivities } from './store';
import { createVisibilityActivities } from './visibility';
import { createWatchdogActivities, type WatchdogDeps } from './watchdog';
import { createSupimActivities, type SupimDeps } from './supim';

export type ActivityDeps = SupimDeps & WatchdogDeps;

/** Every activity the worker registers, built from its dependencies (config, SSH sessions, clock). */
export function createActivities(deps: ActivityDeps) {
  return {
    ...createSupimActivities(deps),
    ...createHypervisorActivities(deps),
    ...createStoreActivities(deps),
    ...createReportActivities(deps),
    ...createWatchdogActivities(deps),
    ...createVisibilityActivities(deps),
    ...createRestoreActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;

/**
 * The activities that read or write the backup store's local disk (and the partial files a retry resumes
 * from). They run on the store task queue, polled only by workers on the backup host; everything else
 * talks to remote hosts only and may run on any worker.
 */
export const STORE_ACTIVITIES = [
  'backupSupimDay',
  'storePreflight',
  'pullImage',
  'recordStoredSet',
  'applyStoreRetention',
  'readStoredSet',
  'pushImage',
  'pickVmToTest',
  'recordRestoreTest',
  'readRestoreTests',
  'restoreSupimDay',
] as const satisfies readonly (keyof Activities)[];

export function splitByTaskQueue(activities: Activities) {
  const onStore = new Set<string>(STORE_ACTIVITIES);
  const entries = Object.entries(activities);
  return {
    store: Object.fromEntries(entries.filter(([name]) => onStore.has(name))) as Partial<Activities>,
    anyWorker: Object.fromEntries(entries.filter(([name]) => !onStore.has(name))) as Partial<Activities>,
  };
}
