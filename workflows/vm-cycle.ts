import { CancellationScope, isCancellation, proxyActivities, type ActivityOptions } from '@temporalio/workflow';
import {
  policyFor,
  type VmImage,
  type VmProgress,
  type VmResult,
  type VmStep,
  type WeeklySettings,
} from '../domain/weekly-summary';
import type { Activities } from '../activities';
import { formatBytes } from '../domain/format';
import { failureText } from './failure-text';

function cycleActivities(vm: string, settings: WeeklySettings, shutdownTimeoutSeconds: number) {
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
  /** Imaging, verifying, pulling: long, so liveness comes from heartbeats. */
  const long: ActivityOptions = {
    ...common,
    startToCloseTimeout: '12 hours',
    retry: { initialInterval: '5 seconds', maximumInterval: '1 minute', maximumAttempts: 3 },
  };
  // The store's activities write to the backup host's disk: only its workers take them.
  const onStore = { taskQueue: settings.storeTaskQueue };
  return {
    quick: proxyActivities<Activities>(quick),
    long: proxyActivities<Activities>(long),
    storeQuick: proxyActivities<Activities>({ ...quick, ...onStore }),
    storeLong: proxyActivities<Activities>({ ...long, ...onStore }),
    /** Putting a VM back: retried until it is confirmed running, whatever happens. */
    restore: proxyActivities<Activities>({
      ...common,
      // It may watch a shutdown that is still under way before it can start the VM again.
      startToCloseTimeout: (shutdownTimeoutSeconds + 300) * 1000,
      retry: { initialInterval: '2 seconds', maximumInterval: '1 minute' }, // no maximumAttempts: unlimited
    }),
  };
}

/** A VM left untouched on purpose (the run goes on with the others). */
class SkipVm extends Error {}

/**
 * One VM: preflight -> stop -> image -> verify -> start -> retention.
 * "Ensure running" is registered before the stop request and runs, non-cancellable and retried without
 * limit, on every way out: failure, operator abort, workflow cancellation. A VM found off stays off.
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
  const { quick, long, storeQuick, storeLong, restore } = cycleActivities(vm, settings, policy.shutdownTimeoutSeconds);
  /** What the store removed, or with retention.dryRun would have removed, goes into the summary. */
  const noteStoreDeletions = (outcome: { deleted: string[]; wouldDelete?: string[] }) => {
    result.deleted.push(...outcome.deleted.map((d) => `store: ${d}`));
    if (outcome.wouldDelete) {
      result.wouldDelete = [...(result.wouldDelete ?? []), ...outcome.wouldDelete.map((d) => `store: ${d}`)];
    }
  };
  let shutOffConfirmed = false;
  let mustRestart = false;
  let stopRequestedAt = 0;

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

  try {
    const preflight = await step('preflight', () => quick.preflightVm(vm, stamp));
    result.deleted.push(...preflight.deleted);
    result.imageAreaFreeBefore = preflight.freeBytes;
    if (preflight.state !== 'missing') result.wasRunning = preflight.state === 'running';
    if (!preflight.ok) throw new SkipVm(preflight.reason);
    if (settings.store) {
      const allocated = preflight.disks.reduce((sum, d) => sum + d.allocatedBytes, 0);
      const room = await step('store-preflight', () => storeQuick.storePreflight(vm, stamp, allocated));
      noteStoreDeletions(room);
      result.storeFreeBefore = room.freeBytes;
      result.previousImageBytes = room.previousBytes;
      if (!room.ok) throw new SkipVm(room.reason);
    }

    if (result.wasRunning) {
      mustRestart = true; // the compensation exists before the VM is asked to stop
      stopRequestedAt = Date.now();
      await step('stopping', async () => {
        await quick.requestShutdown(vm);
        const outcome = await quick.awaitShutOff(vm, policy.shutdownTimeoutSeconds);
        shutOffConfirmed = outcome === 'shut-off';
        if (shutOffConfirmed) return;
        if (!policy.forceOff) {
          throw new SkipVm(
            `did not shut down within ${policy.shutdownTimeoutSeconds} s (ACPI request ignored?); left running`,
          );
        }
        await quick.forceOff(vm);
        shutOffConfirmed = true;
        result.reason = `forced off after ${policy.shutdownTimeoutSeconds} s without shutting down`;
      });
    }

    const onDisk = (disk: { target: string }) => ({ summary: `VM ${vm}: disk ${disk.target}` });
    for (const disk of preflight.disks) {
      await step('imaging', () => long.createImage.executeWithOptions(onDisk(disk), [vm, stamp, disk]));
    }
    const images: VmImage[] = [];
    for (const disk of preflight.disks) {
      images.push(await step('verifying', () => long.verifyImage.executeWithOptions(onDisk(disk), [vm, stamp, disk])));
    }
    await quick.recordVerifiedSet(vm, stamp, images);
    result.images = images;

    if (mustRestart) {
      await step('starting', () => restore.ensureRunning(vm));
      mustRestart = false;
      result.runningAtEnd = true;
      result.downtimeMs = Date.now() - stopRequestedAt;
    }
    if (settings.store) {
      for (const image of images) {
        const pull = { summary: `VM ${vm}: disk ${image.disk}, ${formatBytes(image.bytes)}` };
        result.stored.push(
          await step('pulling', () => storeLong.pullImage.executeWithOptions(pull, [vm, stamp, image])),
        );
      }
      await storeQuick.recordStoredSet(vm, stamp, result.stored, images);
      const storeRetention = await step('store-retention', () => storeQuick.applyStoreRetention(vm, stamp));
      noteStoreDeletions(storeRetention);
      result.storeFreeAfter = storeRetention.freeBytes;
    }
    const retention = await step('retention', () => quick.applyRetention(vm, settings.keepImages, stamp));
    result.deleted.push(...retention.deleted);
    result.imageAreaFreeAfter = retention.freeBytes;
    result.status = 'backed-up';
  } catch (err) {
    if (err instanceof SkipVm) {
      result.status = 'skipped';
      result.reason = err.message;
    } else {
      result.status = isCancellation(err) ? 'aborted' : 'failed';
      result.failedStep = progress.step;
      result.reason = isCancellation(err) ? `${progress.step} interrupted: run aborted or cancelled` : failureText(err);
    }
  }

  // Only a VM this cycle asked to stop is touched here; one that was never asked stays as it was found.
  if (mustRestart || (stopRequestedAt && result.status !== 'backed-up')) {
    try {
      await CancellationScope.nonCancellable(() =>
        step('restarting', async () => {
          // Interrupted between the stop request and "shut off": the guest may still be powering off.
          const watch = stopRequestedAt && !shutOffConfirmed ? policy.shutdownTimeoutSeconds : 0;
          await restore.ensureRunning(vm, watch);
          result.downtimeMs ??= Date.now() - stopRequestedAt;
          result.runningAtEnd = true;
        }),
      );
    } catch (err) {
      // Only a VM that no longer exists ends here: ensureRunning retries everything else until it runs.
      result.runningAtEnd = false;
      result.status = 'failed';
      result.reason = `${result.reason ? `${result.reason}; ` : ''}could not restart: ${failureText(err)}`;
    }
  }
  if (result.status === 'failed' || result.status === 'aborted') {
    // Best effort: a stale partial is also discarded by the next attempt at this set.
    await CancellationScope.nonCancellable(() => quick.discardPartials(vm, stamp)).catch(() => undefined);
  }
  progress.step = 'done';
  progressChanged();
  return result;
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
