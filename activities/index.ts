import { createGuardianActivities } from './guardian';
import { createHypervisorActivities } from './hypervisor';
import { createOffsiteActivities } from './offsite';
import { createOverlayActivities } from './overlay';
import { createReportActivities } from './report';
import { createRunsActivities } from './runs';
import { createRestoreHypervisorActivities } from './restore';
import { createRestoreStoreActivities, RESTORE_STORE_ACTIVITIES } from './restore-store';
import { createStoreActivities } from './store';
import { createResticStoreActivities } from './store-restic';
import { createVisibilityActivities } from './visibility';
import { createWatchdogActivities, type WatchdogDeps } from './watchdog';
import { createSupimActivities, type SupimDeps } from './supim';
import { createSupimResticActivities } from './supim-restic';
import type { Services } from './services';
import { atActivityEdge } from './failures';

export { createServices, type Services } from './services';

export type ActivityDeps = Omit<SupimDeps, 'openSsh'> & WatchdogDeps & { services: Services };

/**
 * Every activity the worker registers, built from its dependencies (config, the services, clock), each
 * behind the activity edge: adapters' errors leave as typed ApplicationFailures.
 */
export function createActivities(deps: ActivityDeps) {
  return atActivityEdge({
    ...createSupimActivities({ ...deps, openSsh: deps.services.openSsh }),
    ...createSupimResticActivities(deps),
    ...createHypervisorActivities(deps),
    ...createOverlayActivities(deps),
    ...createStoreActivities(deps),
    ...createResticStoreActivities(deps),
    ...createReportActivities(deps),
    ...createWatchdogActivities(deps),
    ...createVisibilityActivities(deps),
    ...createGuardianActivities(deps),
    ...createRunsActivities(deps),
    ...createRestoreStoreActivities(deps),
    ...createRestoreHypervisorActivities(deps),
    ...createOffsiteActivities(deps),
  });
}

export type Activities = ReturnType<typeof createActivities>;

/**
 * The activities that read or write the backup store's local disk (and the partial files a retry resumes
 * from). They run on the store task queue, polled only by workers on the backup host; everything else
 * talks to remote hosts only and may run on any worker. This list is the one place that says so: the
 * worker registers by it and the workflows' proxies are typed by it.
 */
export const STORE_ACTIVITIES = [
  'backupSupimDay',
  'storeSupimDayInRestic',
  'storePreflight',
  'pullImage',
  'recordStoredSet',
  'applyStoreRetention',
  'storeFrozenDisk',
  'recordResticSet',
  'discardResticPartials',
  'copyToOffsite',
  'checkOffsiteFreshness',
  ...RESTORE_STORE_ACTIVITIES,
] as const satisfies readonly (keyof Activities)[];

type StoreActivityName = (typeof STORE_ACTIVITIES)[number];
/** Activities of the store task queue: only workers on the backup host take them. */
export type StoreActivities = Pick<Activities, StoreActivityName>;
/** Activities of the main task queue (remote hosts only): any worker takes them. */
export type RemoteActivities = Omit<Activities, StoreActivityName>;

export function splitByTaskQueue(activities: Activities): { store: StoreActivities; remote: RemoteActivities } {
  const onStore = new Set<string>(STORE_ACTIVITIES);
  const entries = Object.entries(activities);
  return {
    store: Object.fromEntries(entries.filter(([name]) => onStore.has(name))) as StoreActivities,
    remote: Object.fromEntries(entries.filter(([name]) => !onStore.has(name))) as RemoteActivities,
  };
}
