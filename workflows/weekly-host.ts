import { CancellationScope, isCancellation, patched, setCurrentDetails, setHandler } from '@temporalio/workflow';
import { inRequestOrder, type HostSummary, type VmProgress, type VmResult } from '../domain/weekly-summary';
import { remoteActivities } from './activity-proxies';
import { progressQuery } from './definitions';
import { RunTags } from './run-tags';
import { notStarted, vmCycle } from './vm-cycle';

export interface WeeklyHostInput {
  hypervisor: string;
  /** The task queue of this hypervisor's activities. */
  taskQueue: string;
  /** The weekly run's image stamp: every host's sets of one run share it. */
  stamp: string;
  /** Only these VMs (default: the hypervisor's list, or every running VM). */
  vms?: string[];
  /** `vms` are looked for on every hypervisor: the names this one does not have belong to another. */
  onlyExisting?: boolean;
}

/**
 * One hypervisor's part of a weekly run (child workflow `vms-<week>-<hypervisor>-<stamp>`): checked at once
 * (an unreachable host's VMs are left untouched and reported), then each VM through its cycle, at most
 * `concurrency` at a time. It progresses and fails alone; a cancel puts its stopped VMs back and it returns
 * what it did, so the weekly run reports it.
 */
export async function weeklyHostVms(input: WeeklyHostInput): Promise<HostSummary> {
  const { hypervisor, taskQueue, stamp } = input;
  const startedAt = new Date().toISOString();
  const progress: VmProgress[] = [];
  const results: VmResult[] = [];
  let order = input.vms ?? [];
  setHandler(progressQuery, () => ({ stamp, vms: progress }));
  const showProgress = () => setCurrentDetails(progress.map((p) => `${p.vm}: ${p.step}`).join('\n'));
  const done = (unreachable?: string): HostSummary => ({
    hypervisor,
    vms: inRequestOrder(results, order).map((r) => ({ ...r, hypervisor })),
    ...(unreachable !== undefined && { unreachable }),
    startedAt,
    finishedAt: new Date().toISOString(),
  });

  const { getWeeklySettings, resolveVms } = remoteActivities({
    taskQueue,
    startToCloseTimeout: '2 minutes',
    retry: { initialInterval: '2 seconds', maximumInterval: '30 seconds', maximumAttempts: 5 },
  });
  // A short check without waiting out an outage: a dead host is reported within minutes, not hours.
  const { checkHypervisor } = remoteActivities({
    taskQueue,
    startToCloseTimeout: '90 seconds',
    retry: { initialInterval: '5 seconds', maximumInterval: '15 seconds', maximumAttempts: 3 },
  });
  if (patched('host-run-search-attribute')) await RunTags.hostRun(hypervisor);
  const settings = await getWeeklySettings();
  const reach = await checkHypervisor();
  if (!reach.ok) {
    const named = input.onlyExisting ? [] : (input.vms ?? (settings.vms === 'all-running' ? [] : settings.vms));
    for (const vm of named) {
      results.push({ ...notStarted(vm, `hypervisor unreachable, untouched: ${reach.reason}`), status: 'skipped' });
    }
    return done(reach.reason);
  }
  try {
    const vms = [...new Set(await resolveVms(input.vms, input.onlyExisting))];
    order = vms;
    progress.push(...vms.map((vm) => ({ vm, hypervisor, step: 'pending' as const, steps: [] })));
    showProgress();
    const queue = [...progress];
    const lane = async () => {
      for (let next = queue.shift(); next; next = queue.shift()) {
        results.push(
          CancellationScope.current().consideredCancelled
            ? notStarted(next.vm, 'not started: run aborted or cancelled')
            : await vmCycle(next.vm, stamp, settings, next, showProgress),
        );
      }
    };
    await Promise.all(Array.from({ length: Math.min(settings.concurrency, vms.length) }, lane));
  } catch (err) {
    if (!isCancellation(err)) throw err;
  }
  return done();
}
