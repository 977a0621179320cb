import { log, patched } from '@temporalio/workflow';
import { GUARDIAN_GRACE_SECONDS, type GuardianSummary, type OverlaysLeft, type VmPutBack } from '../domain/guardian';
import { remoteActivities } from './activity-proxies';
import { failureText } from './failure-text';

const { listHeldDown, endVmCopies, sendHeldDownAlert, sendOverlaysMergedAlert, findVmsOnOverlays, lockVm, unlockVm } =
  remoteActivities({
    startToCloseTimeout: '2 minutes',
    retry: { initialInterval: '5 seconds', maximumInterval: '1 minute', maximumAttempts: 5 },
  });
const { ensureRunning } = remoteActivities({
  startToCloseTimeout: '5 minutes',
  // A few minutes of tries per guardian run; the next run (minutes later) tries again.
  retry: { initialInterval: '2 seconds', maximumInterval: '30 seconds', maximumAttempts: 10 },
});

const { mergeOverlays } = remoteActivities({
  startToCloseTimeout: '6 hours',
  heartbeatTimeout: '2 minutes',
  retry: { initialInterval: '5 seconds', maximumInterval: '1 minute', maximumAttempts: 3 },
});

/**
 * Merges the overlays of VMs an `imaging: overlay` run left on them (killed mid-merge, terminated): only a VM
 * whose lock it can take, so never one a live run is imaging. The VMs keep running throughout.
 */
async function mergeLeftOverlays(): Promise<OverlaysLeft[]> {
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
  const overlaysLeft = patched('guardian-merges-overlays') ? await mergeLeftOverlays() : [];
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
