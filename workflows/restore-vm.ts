import {
  ApplicationFailure,
  CancellationScope,
  condition,
  isCancellation,
  setCurrentDetails,
  setHandler,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import type { RestorePlan } from '../domain/restore-plan';
import { formatBytes } from '../domain/format';
import type { RestoreProgress, RestoreStep, RestoreVmRequest, RestoreVmResult } from '../domain/restore';
import { imageStamp } from '../domain/weekly-summary';
import { abortUpdate } from './definitions';
import { failureText } from './failure-text';
import { restoreProgressQuery } from './restore-definitions';
import { getRestoreSettings, reportRestore, restoreActivities } from './restore-activities';

/** How long a VM replaced with --stop may stay down after its shutdown (swap, start). */
const DOWNTIME_BUDGET_SECONDS = 600;

/**
 * A VM back from the store. as (the safe default): the set's images pushed to the hypervisor (a stream,
 * SHA-256 checked on arrival, resumed after a crash) and defined as a new domain beside the original, off
 * unless asked to start. replace: the same push next to the VM's disks, then (VM shut off, or stopped
 * cleanly with `stop`) each disk file is kept as `<file>.before-restore-<stamp>` and the image takes its
 * place; the VM is started if it was running. Any failure or abort after the swap puts the original disks
 * back (and the VM running again if it was). Progress: query `progress`; abort: update `abort`.
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
  let finished = false;
  setHandler(restoreProgressQuery, () => progress);
  setHandler(
    abortUpdate,
    async (reason: string) => {
      progress.aborted ??= reason.trim() || 'aborted by an operator';
      work.cancel();
      await condition(() => finished);
      return {
        acknowledged: true as const,
        reason: progress.aborted,
        running: result.domain && result.state?.startsWith('running') ? [result.domain] : [],
      };
    },
    {
      validator: (reason: string) => {
        if (typeof reason !== 'string') throw new Error('the reason must be text');
      },
    },
  );

  const step = async <T>(name: RestoreStep, run: () => Promise<T>): Promise<T> => {
    const started = Date.now();
    progress.step = name;
    setCurrentDetails(`${vm}: ${name}`);
    try {
      return await run();
    } finally {
      progress.steps.push({ step: name, ms: Date.now() - started });
    }
  };

  const settings = await getRestoreSettings();
  const { quick, storeQuick, storeLong, forever } = restoreActivities(settings, `restore ${vm}`);
  let plan: RestorePlan | undefined;
  let stopRequested = false;
  let shutOff = false;
  let swapStarted = false;
  let defined = false;
  let locked = false;
  try {
    try {
      await work.run(async () => {
        const set = await step('reading-set', () => storeQuick.readStoredSet(vm, request.stamp));
        result.stamp = progress.stamp = set.stamp;
        if (mode === 'as' && !set.domainXml) {
          throw ApplicationFailure.nonRetryable(
            `set ${set.stamp} has no saved domain definition (an older backup): use --replace, or define a domain by hand over the restored images`,
          );
        }
        if (mode === 'replace') {
          // One run per VM: a weekly backup must not image disks that are being swapped, nor the reverse.
          const lock = await step('checking-target', () => quick.lockVm(vm));
          if (!lock.acquired) throw ApplicationFailure.nonRetryable(`${vm}: ${lock.reason}`);
          locked = true;
        }
        const planned = await step('checking-target', () =>
          quick.planRestore(mode, vm, set, { newName: request.newName, stop: request.stop, restoreStamp }),
        );
        plan = planned;
        result.domain = planned.domain;
        for (const image of set.images) {
          const target = planned.targets.find((t) => t.disk === image.disk)!;
          const summary = { summary: `restore ${vm}: push ${image.disk}, ${formatBytes(image.bytes)}` };
          result.pushed.push(
            await step('pushing', () =>
              storeLong.pushImage.executeWithOptions(summary, [vm, set.stamp, image, target]),
            ),
          );
        }
        if (mode === 'as') {
          const uuid = uuid4();
          const leftOut = await step('defining', () =>
            quick.defineRestoredVm(set.domainXml!, planned, uuid, request.network ?? 'link-down', `${vm}/${set.stamp}`),
          );
          if (leftOut?.length) result.leftOut = leftOut; // histories before it returned nothing
          defined = true;
          if (request.start) await step('starting', () => quick.ensureRunning(planned.domain));
          return;
        }
        if (planned.wasRunning) {
          stopRequested = true;
          await step('stopping', async () => {
            // The budget bounds how long it may stay down: past it the guardian starts it again.
            await quick.requestShutdown(vm, planned.shutdownTimeoutSeconds + DOWNTIME_BUDGET_SECONDS);
            shutOff = (await quick.awaitShutOff(vm, planned.shutdownTimeoutSeconds)) === 'shut-off';
            if (!shutOff) {
              throw ApplicationFailure.nonRetryable(
                `${vm} did not shut down within ${planned.shutdownTimeoutSeconds} s; nothing replaced`,
              );
            }
          });
        }
        swapStarted = true; // putting back is idempotent: registered before the first rename
        result.keptAs = await step('swapping', () => quick.swapInRestoredDisks(vm, planned));
        if (planned.wasRunning) await step('starting', () => quick.ensureRunning(vm));
      });
      result.ok = true;
    } catch (err) {
      result.failedStep = progress.step;
      result.reason = isCancellation(err) ? `${progress.step} interrupted: aborted or cancelled` : failureText(err);
      if (progress.aborted) result.aborted = progress.aborted;
      await CancellationScope.nonCancellable(async () => {
        const done = plan;
        if (!done) return;
        if (swapStarted) {
          await step('putting-back', () => forever.putOriginalDisksBack(vm, done));
          result.putBack = true;
        }
        if (stopRequested) {
          // Interrupted before "shut off" was confirmed: the guest may still be powering off.
          await step('starting', () => forever.ensureRunning(vm, shutOff ? 0 : done.shutdownTimeoutSeconds));
        }
        if (!defined) {
          await step('cleaning-up', () => forever.discardPushed(done)).catch(() => undefined);
        }
      });
    }
    if (result.domain) {
      const domain = result.domain;
      result.state = await CancellationScope.nonCancellable(() => quick.restoredDomainState(domain)).catch(
        () => undefined,
      );
    }
  } finally {
    if (locked) await CancellationScope.nonCancellable(() => forever.unlockVm(vm));
    progress.step = 'done';
    result.finishedAt = new Date().toISOString();
    finished = true;
    await reportRestore({ kind: 'vm', result });
  }
  return result;
}
