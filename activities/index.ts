import { createHypervisorActivities } from './hypervisor';
import { createReportActivities } from './report';
import { createStoreActivities } from './store';
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
  };
}

export type Activities = ReturnType<typeof createActivities>;
