import {
  CancellationScope,
  CancelledFailure,
  isCancellation,
  setCurrentDetails,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import {
  imageStamp,
  isoWeekLabel,
  weeklyRunOk,
  type VmProgress,
  type VmResult,
  type WeeklySummary,
} from '../domain/weekly-summary';
import { remoteActivities } from './activity-proxies';
import { progressQuery } from './definitions';
import { reportedRun } from './reported-run';
import { AbortHandler } from './saga';
import { notStarted, vmCycle } from './vm-cycle';

import type { WeeklyVmInput } from './definitions';

const { getWeeklySettings, resolveVms, openRunsBefore } = remoteActivities({
  startToCloseTimeout: '2 minutes',
  retry: { initialInterval: '2 seconds', maximumInterval: '30 seconds', maximumAttempts: 5 },
});

/**
 * Weekly runs started before several hypervisors (kept so their histories replay): one hypervisor, every VM
 * through its cycle in this workflow, and a run that found an earlier one open did nothing.
 */
export async function weeklyOneHost(input: WeeklyVmInput): Promise<WeeklySummary> {
  const startedAt = new Date().toISOString();
  const stamp = imageStamp(workflowInfo().startTime);
  const week = isoWeekLabel(startedAt.slice(0, 10));
  const progress: VmProgress[] = [];
  const results: VmResult[] = [];
  const cycles = new CancellationScope();
  // An abort cancels the cycles under way (each puts its VM back) and answers once every VM is back.
  const abort = new AbortHandler(cycles, () => results.filter((r) => r.runningAtEnd).map((r) => r.vm));

  setHandler(progressQuery, () => ({ stamp, vms: progress, aborted: abort.reason }));

  const summary = (): WeeklySummary => {
    const order = new Map(progress.map((p, i) => [p.vm, i]));
    const vms = [...results].sort((a, b) => (order.get(a.vm) ?? 0) - (order.get(b.vm) ?? 0));
    return {
      week,
      stamp,
      vms,
      ok: !abort.reason && weeklyRunOk(vms),
      ...(abort.reason ? { aborted: abort.reason } : {}),
      startedAt,
      finishedAt: new Date().toISOString(),
    };
  };

  // The Web UI's "current details": one line per VM with the step it is in.
  const showProgress = () => setCurrentDetails(progress.map((p) => `${p.vm}: ${p.step}`).join('\n'));

  return reportedRun<WeeklySummary>('weekly', async (run) => {
    run.named(week);
    run.sofar(summary);
    // A schedule-fired run and `run vms` at once are one run: the later one leaves the VMs to the earlier.
    const { workflowId, workflowType, startTime } = workflowInfo();
    const [earlier] = await openRunsBefore(workflowType, startTime.toISOString(), workflowId);
    if (earlier) return { ...summary(), alreadyRunning: earlier };
    try {
      const settings = await getWeeklySettings();
      const vms = [...new Set(await resolveVms(input.vms))];
      progress.push(...vms.map((vm) => ({ vm, step: 'pending' as const, steps: [] })));
      showProgress();
      const queue = [...progress];
      const lane = async () => {
        for (let next = queue.shift(); next; next = queue.shift()) {
          const stop = abort.reason ?? (CancellationScope.current().consideredCancelled ? 'run cancelled' : undefined);
          results.push(
            stop
              ? notStarted(next.vm, `not started: ${stop}`)
              : await vmCycle(next.vm, stamp, settings, next, showProgress),
          );
        }
      };
      await cycles.run(() => Promise.all(Array.from({ length: Math.min(settings.concurrency, vms.length) }, lane)));
    } catch (err) {
      if (!isCancellation(err)) throw err;
    } finally {
      abort.finished();
    }
    if (!abort.reason && CancellationScope.current().consideredCancelled) {
      throw new CancelledFailure('weekly VM backup cancelled; the VMs it had stopped were started again');
    }
    return summary();
  });
}
