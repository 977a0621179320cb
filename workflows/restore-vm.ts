import {
  ApplicationFailure,
  CancellationScope,
  isCancellation,
  uuid4,
  workflowInfo,
  setHandler,
} from '@temporalio/workflow';
import type { RestorePlan } from '../domain/restore-plan';
import { formatBytes } from '../domain/format';
import type {
  RestoreProgress,
  RestoreStep,
  RestoreVmRequest,
  RestoreVmResult,
  StoredSetForRestore,
} from '../domain/restore';
import { imageStamp } from '../domain/weekly-summary';
import { failureText } from './failure-text';
import { restoreProgressQuery } from './restore-definitions';
import { getRestoreSettings, reportRestore, restoreActivities } from './restore-activities';
import { AbortHandler, Compensations, Stepper } from './saga';
import { fromOffsite } from './restore-from';

/** How long a VM replaced with --stop may stay down after its shutdown (swap, start). */
const DOWNTIME_BUDGET_SECONDS = 600;

/**
 * A VM back from the store. as (the safe default): the set's images pushed to the hypervisor (a stream,
 * SHA-256 checked on arrival, resumed after a crash) and defined as a new domain beside the original, off
 * unless asked to start. replace: the same push next to the VM's disks, then (VM shut off, or stopped
 * cleanly with `stop`) each disk file is kept as `<file>.before-restore-<stamp>` and the image takes its
 * place; the VM is started if it was running. A saga: each step that can half-succeed pushes its undo first
 * (lock released, pushed copy discarded, VM started again, original disks put back) and drops it once
 * confirmed; every way out unwinds what is left and records each outcome in `compensations`.
 * Progress: query `progress`; abort: update `abort`.
 */
export async function restoreVm(request: RestoreVmRequest): Promise<RestoreVmResult> {
  const startedAt = new Date().toISOString();
  const restoreStamp = imageStamp(workflowInfo().startTime);
  const { vm, mode } = request;
  const progress: RestoreProgress = { vm, step: 'reading-set', steps: [] };
  const result: RestoreVmResult = {
    ok: false,
    request,
    vm,
    pushed: [],
    keptAs: [],
    steps: progress.steps,
    startedAt,
    finishedAt: startedAt,
  };
  const work = new CancellationScope();
  setHandler(restoreProgressQuery, () => progress);
  const abort = new AbortHandler(
    work,
    () => (result.domain && result.state?.startsWith('running') ? [result.domain] : []),
    (reason) => (progress.aborted = reason),
  );
  const step = new Stepper<RestoreStep>(progress, { what: vm });
  const undo = new Compensations();

  const settings = await (request.hypervisor ? getRestoreSettings(request.hypervisor) : getRestoreSettings());
  const { quick, storeQuick, storeLong, forever } = restoreActivities(settings, `restore ${vm}`);

  const readSet = async () => {
    const set = await step.run('reading-set', () =>
      storeQuick.readStoredSet(vm, request.stamp, ...fromOffsite(request.offsite)),
    );
    result.stamp = progress.stamp = set.stamp;
    if (mode === 'as' && !set.domainXml) {
      throw ApplicationFailure.nonRetryable(
        `set ${set.stamp} has no saved domain definition (an older backup): use --replace, or define a domain by hand over the restored images`,
      );
    }
    return set;
  };

  /** One run per VM: a weekly backup must not image disks that are being swapped, nor the reverse. */
  const lock = async () => {
    const held = await step.run('checking-target', () => quick.lockVm(vm));
    if (!held.acquired) throw ApplicationFailure.nonRetryable(`${vm}: ${held.reason}`);
    undo.push('unlock', 'release the VM lock', () => forever.unlockVm(vm));
  };

  const planAndPush = async (set: StoredSetForRestore) => {
    const plan = await step.run('checking-target', () =>
      quick.planRestore(mode, vm, set, { newName: request.newName, stop: request.stop, restoreStamp }),
    );
    result.domain = plan.domain;
    // Read on every way out (before the lock goes): the state the restored domain was left in.
    undo.onExit('read the restored domain state', async () => {
      result.state = await quick.restoredDomainState(plan.domain);
    });
    const pushed = undo.push('discard', 'remove the pushed images', () =>
      step.run('cleaning-up', () => forever.discardPushed(plan)),
    );
    for (const image of set.images) {
      const target = plan.targets.find((t) => t.disk === image.disk)!;
      const summary = { summary: `restore ${vm}: push ${image.disk}, ${formatBytes(image.bytes)}` };
      result.pushed.push(
        await step.run('pushing', () =>
          storeLong.pushImage.executeWithOptions(summary, [
            vm,
            set.stamp,
            image,
            target,
            ...fromOffsite(request.offsite),
          ]),
        ),
      );
    }
    return { plan, pushed };
  };

  const restoreAs = async (set: StoredSetForRestore, plan: RestorePlan, pushed: { drop(): void }) => {
    const leftOut = await step.run('defining', () =>
      quick.defineRestoredVm(set.domainXml!, plan, uuid4(), request.network ?? 'link-down', `${vm}/${set.stamp}`),
    );
    if (leftOut?.length) result.leftOut = leftOut; // histories before it returned nothing
    pushed.drop(); // the new domain owns the pushed images now
    if (request.start) await step.run('starting', () => quick.ensureRunning(plan.domain));
  };

  const replace = async (plan: RestorePlan, pushed: { drop(): void }) => {
    if (plan.wasRunning) {
      // Pushed before the VM is asked to stop: interrupted before "shut off" is confirmed, the guest may still
      // be powering off, so the restart watches it for the shutdown timeout first.
      let shutOff = false;
      undo.push('restart', 'start the VM again', () =>
        step.run('starting', () => forever.ensureRunning(vm, shutOff ? 0 : plan.shutdownTimeoutSeconds)),
      );
      await step.run('stopping', async () => {
        // The budget bounds how long it may stay down: past it the guardian starts it again.
        await quick.requestShutdown(vm, plan.shutdownTimeoutSeconds + DOWNTIME_BUDGET_SECONDS);
        shutOff = (await quick.awaitShutOff(vm, plan.shutdownTimeoutSeconds)) === 'shut-off';
        if (!shutOff) {
          throw ApplicationFailure.nonRetryable(
            `${vm} did not shut down within ${plan.shutdownTimeoutSeconds} s; nothing replaced`,
          );
        }
      });
    }
    // Putting back is idempotent: pushed before the first rename.
    const originals = undo.push('put-back', 'put the original disks back', async () => {
      await step.run('putting-back', () => forever.putOriginalDisksBack(vm, plan));
      result.putBack = true;
    });
    result.keptAs = await step.run('swapping', () => quick.swapInRestoredDisks(vm, plan));
    if (plan.wasRunning) await step.run('starting', () => quick.ensureRunning(vm));
    originals.drop();
    undo.drop('restart');
    pushed.drop(); // renamed into place
  };

  try {
    await work.run(async () => {
      const set = await readSet();
      if (mode === 'replace') await lock();
      const { plan, pushed } = await planAndPush(set);
      if (mode === 'as') await restoreAs(set, plan, pushed);
      else await replace(plan, pushed);
    });
    result.ok = true;
  } catch (err) {
    result.failedStep = step.current;
    result.reason = isCancellation(err) ? `${step.current} interrupted: aborted or cancelled` : failureText(err);
    if (abort.reason) result.aborted = abort.reason;
  }
  result.compensations = await undo.unwind();
  progress.step = 'done';
  result.finishedAt = new Date().toISOString();
  abort.finished();
  await reportRestore({ kind: 'vm', result });
  return result;
}
