import type { VmPolicy, WeeklySettings } from '../../domain/weekly-summary';
import type { ActivityOptions } from '@temporalio/workflow';
import { remoteActivities, storeActivities } from '../activity-proxies';
import { commonOptions, forever, long, quick } from '../saga/profiles';

/** The activity proxies of one VM's cycle, each with the options its kind of work needs. */
export function cycleActivities(vm: string, settings: WeeklySettings, policy: VmPolicy) {
  // The summary is shown next to each activity in the Web UI's event history.
  const common = commonOptions(settings.heartbeatTimeoutSeconds, `VM ${vm}`);
  /** Copies and checks: three tries; a cancel waits until the remote copy ended. */
  const copy = (seconds: number) => long(common, seconds * 1000, 3, true);
  // On the VM's hypervisor's task queue (runs before several hypervisors: the main one).
  const onHost = (options: ActivityOptions) =>
    remoteActivities(settings.taskQueue ? { ...options, taskQueue: settings.taskQueue } : options);
  return {
    remote: onHost(quick(common)),
    // It polls for the whole shutdown timeout: its own bound derives from it.
    stopping: onHost({ ...quick(common), startToCloseTimeout: (policy.shutdownTimeoutSeconds + 120) * 1000 }),
    imaging: onHost(copy(policy.maxDowntimeSeconds + 300)),
    checking: onHost(copy(24 * 3600)),
    /** Putting a VM back: retried until it is confirmed running; it may first watch a shutdown under way. */
    restart: onHost(forever(common, (policy.shutdownTimeoutSeconds + 300) * 1000)),
    /** Merging overlays back: long (a whole disk's writes), live on heartbeats; the VM runs meanwhile. */
    merging: onHost(long(common, '6 hours', 5)),
    store: storeActivities(settings.storeTaskQueue, quick(common)),
    storeLong: storeActivities(settings.storeTaskQueue, copy(12 * 3600)),
  };
}

export type CycleActivities = ReturnType<typeof cycleActivities>;
