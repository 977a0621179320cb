import {
  ActivityCancellationType,
  CancellationScope,
  isCancellation,
  sleep,
  type ActivityOptions,
} from '@temporalio/workflow';
import type { PreparedDisk } from '../domain/vm-contracts';
import { formatBytes, formatDuration } from '../domain/format';
import {
  policyFor,
  type VmImage,
  type VmPolicy,
  type VmProgress,
  type VmResult,
  type VmStep,
  type WeeklySettings,
} from '../domain/weekly-summary';
import { remoteActivities, storeActivities } from './activity-proxies';
import { Compensations } from './saga';
import { failureText } from './failure-text';

/** Time kept back from the downtime budget for the boot after an abandoned copy. */
const BOOT_RESERVE_SECONDS = 60;

function cycleActivities(vm: string, settings: WeeklySettings, policy: VmPolicy) {
  const common = {
    heartbeatTimeout: settings.heartbeatTimeoutSeconds * 1000, // milliseconds
    summary: `VM ${vm}`, // shown next to each activity in the Web UI's event history
  };
  /** Short remote calls: a few tries, then the failure is reported. */
  const quick: ActivityOptions = {
    ...common,
    startToCloseTimeout: '10 minutes',
    retry: { initialInterval: '2 seconds', maximumInterval: '30 seconds', maximumAttempts: 5 },
  };
  /** Copies and checks: liveness from heartbeats and real progress; a cancel waits until the remote copy ended. */
  const long = (timeoutSeconds: number): ActivityOptions => ({
    ...common,
    startToCloseTimeout: timeoutSeconds * 1000,
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry: { initialInterval: '5 seconds', maximumInterval: '1 minute', maximumAttempts: 3 },
  });
  return {
    remote: remoteActivities(quick),
    // It polls for the whole shutdown timeout: its own bound derives from it.
    stopping: remoteActivities({ ...quick, startToCloseTimeout: (policy.shutdownTimeoutSeconds + 120) * 1000 }),
    imaging: remoteActivities(long(policy.maxDowntimeSeconds + 300)),
    checking: remoteActivities(long(24 * 3600)),
    /** Putting a VM back: retried without limit until it is confirmed running, whatever fails meanwhile. */
    restart: remoteActivities({
      ...common,
      // It may watch a shutdown that is still under way before it can start the VM again.
      startToCloseTimeout: (policy.shutdownTimeoutSeconds + 300) * 1000,
      retry: { initialInterval: '2 seconds', maximumInterval: '1 minute' }, // no maximumAttempts: unlimited
    }),
    /** Merging overlays back: long (a whole disk's writes), live on heartbeats; the VM runs meanwhile. */
    merging: remoteActivities({
      ...common,
      startToCloseTimeout: '6 hours',
      retry: { initialInterval: '5 seconds', maximumInterval: '1 minute', maximumAttempts: 5 },
    }),
    store: storeActivities(settings.storeTaskQueue, quick),
    storeLong: storeActivities(settings.storeTaskQueue, long(12 * 3600)),
  };
}

/** A VM left untouched on purpose (the run goes on with the others). */
class SkipVm extends Error {}

/** The downtime budget ran out while the VM was down: the copy was abandoned. */
class OverBudget extends Error {}

/**
 * One VM: lock -> preflight -> stop -> image -> start -> verify -> pull -> retention, as a saga. Before a step
 * that can half-succeed its compensation is pushed; it is dropped once the step's effect is confirmed; every
 * way out (failure, abort, cancel) runs what is left, non-cancellable, and records each outcome.
 */
export async function vmCycle(
  vm: string,
  stamp: string,
  settings: WeeklySettings,
  progress: VmProgress,
  progressChanged: () => void = () => undefined,
): Promise<VmResult> {
  const result: VmResult = {
    vm,
    status: 'failed',
    wasRunning: null,
    runningAtEnd: null,
    images: [],
    stored: [],
    steps: progress.steps,
    deleted: [],
  };
  const policy = policyFor(settings, vm);
  const act = cycleActivities(vm, settings, policy);
  const undo = new Compensations();
  let stopRequestedAt = 0;
  let wentOff = false;
  /** Drops the restart compensation once the VM is confirmed running. */
  let runningAgain = () => undefined as void;

  const step = async <T>(name: VmStep, work: () => Promise<T>): Promise<T> => {
    const startedAt = Date.now();
    progress.step = name;
    progress.stepStartedAt = new Date(startedAt).toISOString();
    progressChanged();
    try {
      return await work();
    } finally {
      progress.steps.push({ step: name, startedAt: progress.stepStartedAt, ms: Date.now() - startedAt });
    }
  };
  /** What the store removed, or with retention.dryRun would have removed, goes into the summary. */
  const noteStoreDeletions = (outcome: { deleted: string[]; wouldDelete?: string[] }) => {
    result.deleted.push(...outcome.deleted.map((d) => `store: ${d}`));
    if (outcome.wouldDelete?.length) {
      result.wouldDelete = [...(result.wouldDelete ?? []), ...outcome.wouldDelete.map((d) => `store: ${d}`)];
    }
  };
  const markRunning = () => {
    result.runningAtEnd = true;
    if (wentOff) result.downtimeMs ??= Date.now() - stopRequestedAt;
  };
  /** Starts the VM, or watches a shutdown that may still be under way and starts it if it goes off. */
  const startAgain = async (watchSeconds: number) => {
    if ((await act.restart.ensureRunning(vm, watchSeconds)).started) wentOff = true;
  };

  // --- the phases -------------------------------------------------------------------------------------
  const lock = () =>
    step('locking', async () => {
      const held = await act.remote.lockVm(vm);
      if (!held.acquired) throw new SkipVm(held.reason);
      undo.push('unlock', 'release the VM lock', () => act.remote.unlockVm(vm));
    });

  const checkBeforeStop = async () => {
    const preflight = await step('preflight', () => act.remote.preflightVm(vm, stamp));
    result.deleted.push(...preflight.deleted);
    result.imageAreaFreeBefore = preflight.freeBytes;
    if (preflight.state !== 'missing') result.wasRunning = preflight.state === 'running' || !!preflight.heldDown;
    if (preflight.heldDown) {
      // An earlier run stopped it and is gone: image it now if its budget allows, else start it first and
      // back it up as any running VM.
      result.heldDownBy = preflight.heldDown.owner.workflowId;
      stopRequestedAt = Date.parse(preflight.heldDown.since);
      wentOff = true;
      runningAgain = dropper(undo.push('restart', 'start the VM an earlier run left off', () => startAgain(0)));
      if ((Date.now() - stopRequestedAt) / 1000 + BOOT_RESERVE_SECONDS >= policy.maxDowntimeSeconds) {
        await step('starting', () => startAgain(0));
        runningAgain();
        markRunning();
        wentOff = false;
      }
    }
    if (!preflight.ok) throw new SkipVm(preflight.reason);
    if (settings.store) {
      const allocated = preflight.disks.reduce((sum, d) => sum + d.allocatedBytes, 0);
      const room = await step('store-preflight', () => act.store.storePreflight(vm, stamp, allocated));
      noteStoreDeletions(room);
      result.storeFreeBefore = room.freeBytes;
      result.previousImageBytes = room.previousBytes;
      if (!room.ok) throw new SkipVm(room.reason);
    }
    return preflight.disks;
  };

  const stop = () =>
    step('stopping', async () => {
      // The compensation exists before the VM is asked to stop; it watches a shutdown that may still be under
      // way, so a guest that powers off a moment after an abort is started again too.
      runningAgain = dropper(
        undo.push('restart', 'start the VM again', () => startAgain(wentOff ? 0 : policy.shutdownTimeoutSeconds)),
      );
      stopRequestedAt = Date.now();
      await act.stopping.requestShutdown(vm, policy.maxDowntimeSeconds);
      if ((await act.stopping.awaitShutOff(vm, policy.shutdownTimeoutSeconds)) === 'shut-off') {
        wentOff = true;
        return;
      }
      if (!policy.forceOff) {
        throw new SkipVm(
          `did not shut down within ${policy.shutdownTimeoutSeconds} s (ACPI request ignored?); left running`,
        );
      }
      await act.remote.forceOff(vm);
      wentOff = true;
      result.reason = `forced off after ${policy.shutdownTimeoutSeconds} s without shutting down`;
    });

  const image = (disks: PreparedDisk[]) =>
    step('imaging', async () => {
      const done = dropper(
        undo.push('discard', 'end remote copies and remove partial images', () =>
          act.remote.discardPartials(vm, stamp),
        ),
      );
      const budgetLeft = policy.maxDowntimeSeconds - (Date.now() - stopRequestedAt) / 1000 - BOOT_RESERVE_SECONDS;
      await withinBudget(wentOff ? budgetLeft : Infinity, async () => {
        for (const disk of disks) {
          const options = { summary: `VM ${vm}: disk ${disk.target}` };
          await act.imaging.createImage.executeWithOptions(options, [vm, stamp, disk, Math.max(1, budgetLeft)]);
        }
      });
      done();
    });

  // imaging: overlay — the VM is down only while overlays go on; its frozen disks are imaged while it runs.
  /** A VM an earlier run left on overlays (worker killed mid-merge, run terminated) is merged first. */
  const mergeLeftOverlays = () =>
    step('merging', async () => {
      const left = await act.merging.mergeOverlays(vm);
      if (left.merged.length > 0) result.reason = `overlays an earlier run left merged (${left.merged.join(', ')})`;
    });

  /** Room for the overlays' growth; a VM with a disk overlays cannot cover is imaged offline instead. */
  const overlaysFit = (disks: PreparedDisk[]) =>
    step('preflight', async () => {
      const room = await act.remote.overlayPreflight(vm, disks);
      if (room.offlineInstead) result.reason = room.reason;
      else if (!room.ok) throw new SkipVm(room.reason);
      return room.ok;
    });

  const putOverlays = (disks: PreparedDisk[]) =>
    step('overlays', async () => {
      // Pushed before the overlays go on: a VM left on them (running or not) is merged back on every way out.
      const merged = dropper(
        undo.push('merge', 'merge the overlays back', async () => {
          await act.merging.mergeOverlays(vm);
        }),
      );
      await act.remote.createOverlays(vm, stamp, disks);
      return merged;
    });

  const imageFrozen = (disks: PreparedDisk[]) =>
    step('imaging', async () => {
      const done = dropper(
        undo.push('discard', 'end remote copies and remove partial images', () =>
          act.remote.discardPartials(vm, stamp),
        ),
      );
      for (const disk of disks) {
        const options = { summary: `VM ${vm}: disk ${disk.target} (frozen under its overlay)` };
        await act.checking.createFrozenImage.executeWithOptions(options, [vm, stamp, disk, 24 * 3600]);
      }
      done();
    });

  const mergeOverlays = (merged: () => void) =>
    step('merging', async () => {
      const outcome = await act.merging.mergeOverlays(vm);
      merged();
      if (outcome.resumedFromIoError) {
        result.reason = 'the guest was paused by an I/O error while on its overlays (filesystem full?); resumed';
      }
    });

  const start = () =>
    step('starting', async () => {
      await startAgain(0);
      markRunning();
    });

  const verify = (disks: PreparedDisk[]) =>
    step('verifying', async () => {
      const done = dropper(undo.push('discard', 'end remote checks', () => act.remote.discardPartials(vm, stamp)));
      const images: VmImage[] = [];
      for (const disk of disks) {
        const options = { summary: `VM ${vm}: disk ${disk.target}` };
        images.push(await act.checking.verifyImage.executeWithOptions(options, [vm, stamp, disk]));
      }
      const domainXml = await act.remote.recordVerifiedSet(vm, stamp, images);
      result.images = images;
      done();
      return { images, domainXml };
    });

  const pull = ({ images, domainXml }: { images: VmImage[]; domainXml: string }) =>
    step('pulling', async () => {
      for (const image of images) {
        const options = { summary: `VM ${vm}: disk ${image.disk}, ${formatBytes(image.bytes)}` };
        result.stored.push(await act.storeLong.pullImage.executeWithOptions(options, [vm, stamp, image]));
      }
      await act.store.recordStoredSet(vm, stamp, result.stored, images, domainXml);
    });

  const retain = async () => {
    if (settings.store) {
      const outcome = await step('store-retention', () => act.store.applyStoreRetention(vm, stamp));
      noteStoreDeletions(outcome);
      result.storeFreeAfter = outcome.freeBytes;
    }
    const outcome = await step('retention', () => act.remote.applyRetention(vm, settings.keepImages, stamp));
    result.deleted.push(...outcome.deleted);
    result.imageAreaFreeAfter = outcome.freeBytes;
  };

  // --- the cycle --------------------------------------------------------------------------------------
  try {
    await lock();
    if (policy.imaging === 'overlay') await mergeLeftOverlays();
    const disks = await checkBeforeStop();
    const onOverlays = policy.imaging === 'overlay' && !!result.wasRunning && (await overlaysFit(disks));
    if (result.wasRunning && !wentOff) await stop();
    if (onOverlays) {
      const merged = await putOverlays(disks);
      await start();
      runningAgain();
      await imageFrozen(disks);
      // Merged before the set is recorded: the definition kept with it names the disks, not the overlays.
      await mergeOverlays(merged);
    } else {
      await image(disks);
      if (result.wasRunning) {
        await start();
        runningAgain();
      }
    }
    const verified = await verify(disks);
    if (settings.store) await pull(verified);
    await retain();
    result.status = 'backed-up';
  } catch (err) {
    if (err instanceof SkipVm) {
      result.status = 'skipped';
      result.reason = err.message;
    } else {
      result.status = isCancellation(err) ? 'aborted' : 'failed';
      result.failedStep = progress.step as VmStep;
      result.reason = isCancellation(err)
        ? `${progress.step} interrupted: run aborted or cancelled`
        : err instanceof OverBudget
          ? `downtime budget of ${formatDuration(policy.maxDowntimeSeconds * 1000)} reached while imaging: imaging abandoned, VM started again`
          : failureText(err);
    }
  }

  // --- on every way out: what is left on the stack ----------------------------------------------------
  await step(undo.pending('restart') ? 'restarting' : 'cleaning-up', async () => {
    const runs = await undo.unwind();
    result.compensations = runs;
    const restart = undo.ran('restart');
    if (restart?.ok) markRunning();
    if (restart && !restart.ok) {
      // Only a VM that no longer exists ends here: the restart retries everything else until it runs.
      result.runningAtEnd = false;
      result.status = 'failed';
      result.reason = `${result.reason ? `${result.reason}; ` : ''}could not restart: ${restart.error}`;
    }
    const failed = runs.filter((c) => !c.ok && c.name !== restart?.name);
    if (failed.length > 0 && result.status === 'backed-up') result.status = 'failed';
  });
  progress.step = 'done';
  progressChanged();
  return result;
}

/** Runs `work`, cancelling it (and waiting for its remote processes to end) once `seconds` have passed. */
async function withinBudget(seconds: number, work: () => Promise<void>): Promise<void> {
  if (!Number.isFinite(seconds)) return work();
  if (seconds <= 0) throw new OverBudget();
  const budget = new CancellationScope();
  const timer = new CancellationScope();
  let expired = false;
  timer
    .run(() => sleep(seconds * 1000))
    .then(
      () => {
        expired = true;
        budget.cancel();
      },
      () => undefined,
    );
  try {
    await budget.run(work);
  } catch (err) {
    if (expired && isCancellation(err)) throw new OverBudget();
    throw err;
  } finally {
    timer.cancel();
  }
}

export function notStarted(vm: string, reason: string): VmResult {
  return {
    vm,
    status: 'aborted',
    reason,
    wasRunning: null,
    runningAtEnd: null,
    images: [],
    stored: [],
    steps: [],
    deleted: [],
  };
}

const dropper = (pushed: { drop(): void }) => () => pushed.drop();
