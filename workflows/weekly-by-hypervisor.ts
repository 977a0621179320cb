import {
  CancellationScope,
  CancelledFailure,
  ChildWorkflowCancellationType,
  executeChild,
  isCancellation,
  ParentClosePolicy,
  patched,
  setCurrentDetails,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import {
  imageStamp,
  inRequestOrder,
  isoWeekLabel,
  weeklyRunOk,
  type HostOutcome,
  type HostSummary,
  type VmResult,
  type WeeklySummary,
} from '../domain/weekly-summary';
import { weeklyOffsiteRequest, type OffsiteOutcome } from '../domain/offsite';
import { remoteActivities } from './activity-proxies';
import { progressQuery } from './definitions';
import { failureText } from './failure-text';
import { copyOffsite } from './offsite-copy';
import { reportedRun } from './reported-run';
import { AbortHandler } from './saga';
import { notStarted } from './vm-cycle';
import { weeklyHostVms, type WeeklyHostInput } from './weekly-host';
import type { WeeklyVmInput } from './definitions';

const { listHypervisors } = remoteActivities({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '2 seconds', maximumInterval: '30 seconds', maximumAttempts: 5 },
});

/** What each hypervisor's child run is asked to do, and the requests no hypervisor can take. */
export function planHosts(
  hosts: { name: string; taskQueue: string }[],
  stamp: string,
  requested: string[] | undefined,
): { inputs: WeeklyHostInput[]; refused: VmResult[] } {
  const refused: VmResult[] = [];
  if (!requested?.length) {
    return { inputs: hosts.map((h) => ({ hypervisor: h.name, taskQueue: h.taskQueue, stamp })), refused };
  }
  const exact = new Map<string, string[]>();
  const anywhere: string[] = [];
  for (const entry of requested) {
    const slash = entry.indexOf('/');
    if (slash < 0) {
      anywhere.push(entry);
      continue;
    }
    const [host, vm] = [entry.slice(0, slash), entry.slice(slash + 1)];
    if (!hosts.some((h) => h.name === host)) {
      refused.push({ ...notStarted(vm, `no hypervisor ${JSON.stringify(host)} in config`), status: 'skipped' });
    } else exact.set(host, [...(exact.get(host) ?? []), vm]);
  }
  const inputs: WeeklyHostInput[] = [];
  for (const h of hosts) {
    const base = { hypervisor: h.name, taskQueue: h.taskQueue, stamp };
    // With one hypervisor a plain name is its VM (a missing one is reported there, as before).
    if (hosts.length === 1) {
      const vms = [...anywhere, ...(exact.get(h.name) ?? [])];
      if (vms.length) inputs.push({ ...base, vms });
      continue;
    }
    if (exact.has(h.name)) inputs.push({ ...base, vms: exact.get(h.name)! });
    if (anywhere.length) inputs.push({ ...base, vms: anywhere, onlyExisting: true });
  }
  return { inputs, refused };
}

/** The child run's ID: one per hypervisor and run, named for the week so the Web UI's list reads well. */
export function hostRunId(week: string, hypervisor: string, stamp: string, part = 0): string {
  return `vms-${week}-${hypervisor}-${stamp}${part ? `-${part}` : ''}`;
}

/**
 * The weekly run over every hypervisor: one child run each (weekly-host.ts), all at once, each host failing
 * or stalling alone; no other run blocks this one (each VM's lock decides which run backs it up). One
 * summary and one report, grouped by host.
 */
export async function weeklyByHypervisor(input: WeeklyVmInput): Promise<WeeklySummary> {
  const startedAt = new Date().toISOString();
  const stamp = imageStamp(workflowInfo().startTime);
  const week = isoWeekLabel(startedAt.slice(0, 10));
  const results: VmResult[] = [];
  const hosts: HostOutcome[] = [];
  let hostOrder: string[] = [];
  let offsite: OffsiteOutcome[] = [];
  const children = new CancellationScope();
  // The VMs running again, as `hypervisor/vm` once there are several hypervisors.
  const abort = new AbortHandler(children, () =>
    results
      .filter((r) => r.runningAtEnd)
      .map((r) => (r.hypervisor && hosts.length > 1 ? `${r.hypervisor}/${r.vm}` : r.vm)),
  );
  setHandler(progressQuery, () => ({
    stamp,
    vms: [],
    hosts: hosts.map(({ hypervisor, workflowId }) => ({ hypervisor, workflowId })),
    aborted: abort.reason,
  }));
  const showProgress = () =>
    setCurrentDetails(
      hosts
        .map(
          (h) =>
            `${h.hypervisor}: ${h.finishedAt ? (h.unreachable ? 'unreachable' : 'done') : 'running'} (${h.workflowId})`,
        )
        .join('\n'),
    );

  const summary = (): WeeklySummary => ({
    week,
    stamp,
    vms: inRequestOrder(results, input.vms, hostOrder),
    hosts: [...hosts],
    ok: !abort.reason && weeklyRunOk(results) && hosts.every((h) => !h.unreachable && !h.error),
    ...(abort.reason ? { aborted: abort.reason } : {}),
    ...(offsite.length ? { offsite } : {}),
    startedAt,
    finishedAt: new Date().toISOString(),
  });

  return reportedRun<WeeklySummary>('weekly', async (run) => {
    run.named(week);
    run.sofar(summary);
    try {
      await children.run(() => backUpEachHost());
    } catch (err) {
      if (!isCancellation(err)) throw err;
    } finally {
      abort.finished();
    }
    if (!abort.reason && CancellationScope.current().consideredCancelled) {
      throw new CancelledFailure('weekly VM backup cancelled; the VMs it had stopped were started again');
    }
    // The verified sets go off-site (store.engine restic); a copy behind never fails the run.
    const verified = results.filter((r) => r.status === 'backed-up' && r.stored.length).map((r) => r.vm);
    if (!abort.reason && verified.length && patched('offsite-copy-weekly'))
      offsite = await copyOffsite(weeklyOffsiteRequest(stamp, [...new Set(verified)].sort()));
    return summary();
  });

  async function backUpEachHost(): Promise<void> {
    const known = await listHypervisors();
    hostOrder = known.map((h) => h.name);
    const plan = planHosts(known, stamp, input.vms);
    results.push(...plan.refused);
    const parts = new Map<string, number>();
    const nextId = (hypervisor: string) => {
      const part = parts.get(hypervisor) ?? 0;
      parts.set(hypervisor, part + 1);
      return hostRunId(week, hypervisor, stamp, part);
    };
    const runOne = async (host: WeeklyHostInput) => {
      const outcome: HostOutcome = { hypervisor: host.hypervisor, workflowId: nextId(host.hypervisor) };
      hosts.push(outcome);
      showProgress();
      try {
        const start = () =>
          executeChild(weeklyHostVms, {
            workflowId: outcome.workflowId,
            args: [host],
            // A terminated weekly run asks its host runs to stop, and each puts its stopped VMs back.
            parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
            cancellationType: ChildWorkflowCancellationType.WAIT_CANCELLATION_COMPLETED,
            memo: { hypervisor: host.hypervisor },
          });
        let done: HostSummary | undefined;
        // Two weekly runs started in the same second (the schedule and `run vms`) would name their host runs
        // alike: the later one takes the next free suffix.
        for (let tries = 1; !done; tries++) {
          try {
            done = await start();
          } catch (err) {
            // A run recorded before this failed that host there: it replays so (no marker in its history).
            const taken = err instanceof WorkflowExecutionAlreadyStartedError;
            if (!taken || tries >= 20 || !patched('host-run-next-suffix')) throw err;
            outcome.workflowId = nextId(host.hypervisor);
            showProgress();
          }
        }
        results.push(...done.vms);
        Object.assign(outcome, {
          startedAt: done.startedAt,
          finishedAt: done.finishedAt,
          ...(done.unreachable !== undefined && { unreachable: done.unreachable }),
        });
      } catch (err) {
        outcome.error = failureText(err);
        outcome.finishedAt = new Date().toISOString();
      }
      showProgress();
    };
    await Promise.all(plan.inputs.map(runOne));
    const wanted = (input.vms ?? []).filter((vm) => !vm.includes('/'));
    if (plan.inputs.some((h) => h.onlyExisting)) {
      for (const vm of wanted.filter((name) => !results.some((r) => r.vm === name))) {
        const unreachable = hosts.filter((h) => h.unreachable || h.error).map((h) => h.hypervisor);
        const where = unreachable.length ? ` (not reachable: ${unreachable.join(', ')})` : '';
        results.push({ ...notStarted(vm, `no such VM on any reachable hypervisor${where}`), status: 'skipped' });
      }
    }
  }
}
