import { log, patched } from '@temporalio/workflow';
import { GUARDIAN_GRACE_SECONDS, type GuardianSummary, type OverlaysLeft, type VmPutBack } from '../domain/guardian';
import { remoteActivities } from './activity-proxies';
import { failureText } from './failure-text';

/** The guardian's activities on one hypervisor's task queue (runs before several hypervisors: the main one). */
function guardianActivities(taskQueue?: string) {
  const on = <T extends object>(options: T) => (taskQueue ? { ...options, taskQueue } : options);
  return {
    // A proxy: its activities are looked up by name, not spread.
    quick: remoteActivities(
      on({
        startToCloseTimeout: '2 minutes',
        retry: { initialInterval: '5 seconds', maximumInterval: '1 minute', maximumAttempts: 5 },
      }),
    ),
    ensureRunning: remoteActivities(
      on({
        startToCloseTimeout: '5 minutes',
        // A few minutes of tries per guardian run; the next run (minutes later) tries again.
        retry: { initialInterval: '2 seconds', maximumInterval: '30 seconds', maximumAttempts: 10 },
      }),
    ).ensureRunning,
    mergeOverlays: remoteActivities(
      on({
        startToCloseTimeout: '6 hours',
        heartbeatTimeout: '2 minutes',
        retry: { initialInterval: '5 seconds', maximumInterval: '1 minute', maximumAttempts: 3 },
      }),
    ).mergeOverlays,
  };
}

type GuardianActivities = ReturnType<typeof guardianActivities>;

const { listHypervisors } = remoteActivities({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '2 seconds', maximumInterval: '30 seconds', maximumAttempts: 5 },
});

/**
 * Merges the overlays of VMs an `imaging: overlay` run left on them (killed mid-merge, terminated): only a VM
 * whose lock it can take, so never one a live run is imaging. The VMs keep running throughout.
 */
async function mergeLeftOverlays(act: GuardianActivities): Promise<OverlaysLeft[]> {
  const { findVmsOnOverlays, lockVm, unlockVm } = act.quick;
  const { mergeOverlays } = act;
  const left: OverlaysLeft[] = [];
  for (const vm of await findVmsOnOverlays()) {
    const lock = await lockVm(vm);
    if (!lock.acquired) continue; // its run is open: it merges them itself
    const entry: OverlaysLeft = {
      vm,
      merged: [],
      removed: [],
      ...(lock.tookOverFrom && { leftBy: lock.tookOverFrom }),
    };
    try {
      const outcome = await mergeOverlays(vm);
      entry.merged = outcome.merged;
      entry.removed = outcome.removed;
    } catch (err) {
      entry.error = failureText(err);
      log.error('could not merge the overlays a run left', { vm, error: entry.error });
    } finally {
      await unlockVm(vm);
    }
    left.push(entry);
  }
  return left;
}

/**
 * Puts back VMs that a weekly run stopped and then left down: its run is closed (terminated, reset, timed out,
 * failed) or the VM is past its downtime budget. Runs on its own schedule and at worker start; alerts by mail.
 */
export async function vmGuardian(): Promise<GuardianSummary> {
  if (!patched('guardian-every-hypervisor')) return guardHypervisor(guardianActivities());
  // Every hypervisor in turn; one that does not answer is reported and the others are still guarded.
  const parts: GuardianSummary[] = [];
  const hosts = await listHypervisors();
  for (const host of hosts) {
    try {
      const part = await guardHypervisor(guardianActivities(host.taskQueue));
      const named = (vm: string) => (hosts.length > 1 ? `${host.name}/${vm}` : vm);
      parts.push({
        ...part,
        putBack: part.putBack.map((p) => ({ ...p, vm: named(p.vm) })),
        ...(part.overlaysMerged && { overlaysMerged: part.overlaysMerged.map(named) }),
      });
    } catch (err) {
      log.error('could not guard a hypervisor', { hypervisor: host.name, error: failureText(err) });
      parts.push({ checked: 0, putBack: [], ok: false, unreachable: [`${host.name}: ${failureText(err)}`] });
    }
  }
  const merged = parts.flatMap((p) => p.overlaysMerged ?? []);
  const unreachable = parts.flatMap((p) => p.unreachable ?? []);
  return {
    checked: parts.reduce((n, p) => n + p.checked, 0),
    putBack: parts.flatMap((p) => p.putBack),
    ok: parts.every((p) => p.ok),
    ...(merged.length > 0 && { overlaysMerged: merged }),
    ...(unreachable.length > 0 && { unreachable }),
  };
}

/** One hypervisor: its VMs left down put back (alerted by mail), then overlays a run left merged. */
async function guardHypervisor(act: GuardianActivities): Promise<GuardianSummary> {
  const { listHeldDown, endVmCopies, sendHeldDownAlert, sendOverlaysMergedAlert } = act.quick;
  const { ensureRunning } = act;
  const records = await listHeldDown();
  const putBack: VmPutBack[] = [];
  for (const record of records) {
    const downMs = record.downSeconds * 1000;
    const overBudget = record.downSeconds > record.budgetSeconds + GUARDIAN_GRACE_SECONDS;
    if (!record.runClosed && !overBudget) continue; // its run is open and within budget: it will put it back
    const why = record.runClosed ? 'its run is closed' : `over its downtime budget of ${record.budgetSeconds} s`;
    const entry: VmPutBack = {
      vm: record.vm,
      heldBy: record.owner.workflowId,
      since: record.since,
      downMs,
      why,
      running: false,
    };
    try {
      // A copy of the VM's disk still running would hold the disk's lock: end it first.
      await endVmCopies(record.vm);
      await ensureRunning(record.vm, 0);
      entry.running = true;
    } catch (err) {
      entry.error = failureText(err);
      log.error('could not start a VM left down', { vm: record.vm, error: entry.error });
    }
    putBack.push(entry);
  }
  if (putBack.length > 0) await sendHeldDownAlert(putBack);
  const overlaysLeft = patched('guardian-merges-overlays') ? await mergeLeftOverlays(act) : [];
  const toTell = overlaysLeft.filter((l) => l.error || l.merged.length > 0);
  if (toTell.length > 0 && patched('guardian-alerts-merged-overlays')) await sendOverlaysMergedAlert(toTell);
  const overlaysMerged = overlaysLeft.filter((l) => !l.error).map((l) => l.vm);
  return {
    checked: records.length,
    putBack,
    ok: putBack.every((p) => p.running),
    ...(overlaysMerged.length > 0 && { overlaysMerged }),
  };
}
