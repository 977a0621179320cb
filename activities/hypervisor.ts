import { Context } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { Config, HypervisorConfig } from '../config/schema';
import { hypervisorTaskQueues } from '../adapters/temporal/temporal-connection';
import type { VmImage, VmPolicy, WeeklySettings } from '../domain/weekly-summary';
import { unsafeVmNameReason } from '../domain/vm-names';
import { StalledError, unsupportedDiskReason } from '../adapters/hypervisor/disk-imaging';
import type { HeldDownRecord, Preflight, PreparedDisk, RunRef } from '../domain/vm-contracts';
import { applyRetention as retain, makeRoom } from '../adapters/image-sets/image-sets';
import { newManifest } from '../adapters/image-sets/manifest';
import { setVmsHeldDown } from '../adapters/metrics/backup-metrics';
import { RemoteCommandError } from '../adapters/ssh/remote-command-error';
import type { HypervisorDriver, VmState } from '../adapters/hypervisor/driver';
import type { HypervisorSession } from './hypervisor-session';
import type { Services } from './services';
import { weeklyPolicy } from './vm-policy';
import { runIsClosed } from './runs';

export interface HypervisorDeps {
  config: Config;
  /** The adapters, built once by the worker. */
  services: Services;
  /** To ask whether the run holding a lock or a held-down record is still open. */
  temporalClient?: () => Promise<Client>;
}

export type { Preflight, PreparedDisk };

/** What the imaging step reports in its heartbeats: real progress, shown in the Web UI. */
export interface ImagingProgress {
  vm: string;
  disk: string;
  step: 'imaging' | 'verifying';
  readBytes: number;
  writtenBytes: number;
}

const POLL_MS = 500;
const START_CONFIRM_SECONDS = 120;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The VM's state, waiting out libvirtd not answering (restarting: a transient error) until `deadline`
 * (epoch ms); `onWait` hears why it waits. The guest does not need libvirtd meanwhile, nor does a copy.
 */
async function stateOnceAnswered(
  driver: HypervisorDriver,
  vm: string,
  deadline: number,
  onWait: (why: string) => void = () => undefined,
): Promise<VmState> {
  for (;;) {
    try {
      return await driver.state(vm);
    } catch (err) {
      if (!(err instanceof RemoteCommandError) || err.nonRetryable || Date.now() >= deadline) throw err;
      onWait(`hypervisor not answering: ${err.message}`);
      await sleep(POLL_MS * 4);
    }
  }
}

function currentRun(): RunRef {
  const run = Context.current().info.workflowExecution;
  if (!run) throw ApplicationFailure.retryable('not running inside a workflow', 'NotInWorkflow');
  return { workflowId: run.workflowId, runId: run.runId };
}

export function createHypervisorActivities({ config, services, temporalClient }: HypervisorDeps) {
  const withHypervisor = <T>(use: (h: HypervisorSession) => Promise<T>, details?: () => unknown) =>
    services.hypervisors.heartbeating(use, details);

  const isClosed = (run: RunRef) => runIsClosed(temporalClient, run);

  const policyOf = (hv: HypervisorConfig, vm: string): VmPolicy => weeklyPolicy(services.vmPolicy(hv.host, vm));

  /** The configured hypervisors, each with the task queue its activities run on. */
  async function listHypervisors(): Promise<{ name: string; taskQueue: string }[]> {
    return config.hypervisors.map(({ name }) => ({ name, taskQueue: hypervisorTaskQueues(config, name).remote }));
  }

  /**
   * Whether the hypervisor answers now (SSH with its pinned host key, then libvirt): a weekly run checks
   * each at its start, without waiting out an outage, so a dead host's VMs are reported at once.
   */
  async function checkHypervisor(): Promise<{ ok: true } | { ok: false; reason: string }> {
    try {
      await services.hypervisors.once(({ driver }) => driver.listVms());
      return { ok: true };
    } catch (err) {
      if (!(err instanceof RemoteCommandError)) throw err;
      return { ok: false, reason: err.message };
    }
  }

  async function getWeeklySettings(): Promise<WeeklySettings> {
    const hv = services.hypervisors.hv;
    const queues = hypervisorTaskQueues(config, hv.name);
    return {
      hypervisor: hv.name,
      taskQueue: queues.remote,
      vms: hv.vms,
      concurrency: hv.concurrency,
      keepImages: hv.keepImages,
      store: config.store !== undefined,
      storeTaskQueue: queues.store,
      ...(config.store?.engine === 'restic' ? { storeEngine: 'restic' as const } : {}),
      heartbeatTimeoutSeconds: config.transfer.heartbeatTimeoutSeconds,
      policy: Object.fromEntries(Object.keys(hv.perVm).map((vm) => [vm, policyOf(hv, vm)])),
      defaultPolicy: policyOf(hv, ''),
      stallSeconds: hv.stallSeconds,
    };
  }

  /**
   * The VMs this run covers, each once: the requested ones (missing ones included, to be reported; with
   * `onlyExisting`, those this hypervisor has: a name looked for on every hypervisor), or all running ones,
   * plus any VM an earlier run left held down (it must be put back and backed up).
   */
  async function resolveVms(requested?: string[], onlyExisting = false): Promise<string[]> {
    return withHypervisor(async ({ driver, records, hv }) => {
      const wanted = requested?.length ? requested : hv.vms;
      const here = wanted === 'all-running' || onlyExisting ? await driver.listVms() : [];
      const listed =
        wanted === 'all-running'
          ? here.filter((v) => v.state === 'running').map((v) => v.name)
          : onlyExisting
            ? wanted.filter((vm) => here.some((v) => v.name === vm))
            : wanted;
      const heldDown = wanted === 'all-running' ? (await records.listHeldDown()).map((r) => r.vm) : [];
      return [...new Set([...listed, ...heldDown])];
    });
  }

  /**
   * One run per VM: the lock on the hypervisor, taken over only from a run that is closed (`tookOverFrom`:
   * its workflow ID).
   */
  async function lockVm(
    vm: string,
  ): Promise<{ acquired: true; tookOverFrom?: string } | { acquired: false; reason: string }> {
    const nameProblem = unsafeVmNameReason(vm);
    if (nameProblem) return { acquired: false, reason: `refused VM name: ${nameProblem}` };
    return withHypervisor(async ({ records }) => {
      const outcome = await records.lock(vm, currentRun(), isClosed);
      if (outcome.acquired) {
        const previous = outcome.tookOverFrom?.owner.workflowId;
        return previous ? { acquired: true, tookOverFrom: previous } : { acquired: true };
      }
      const { owner, since } = outcome.holder;
      return { acquired: false, reason: `left to ${owner.workflowId}: that run holds this VM (since ${since})` };
    });
  }

  async function unlockVm(vm: string): Promise<void> {
    await withHypervisor(({ records }) => records.unlock(vm, currentRun()));
  }

  /**
   * Everything checked before a VM goes down: exists, persistent, not paused, every disk imageable, room for
   * its images. A VM found off with a held-down record counts as running.
   */
  async function preflightVm(vm: string, stamp: string): Promise<Preflight> {
    return withHypervisor(async ({ driver, sets, imaging, records, hv }) => {
      const result: Preflight = {
        ok: false,
        state: 'missing',
        detail: '',
        disks: [],
        requiredBytes: 0,
        freeBytes: 0,
        deleted: [],
      };
      const nameProblem = unsafeVmNameReason(vm);
      if (nameProblem) return { ...result, reason: `refused VM name: ${nameProblem}` };
      const state = await driver.state(vm);
      Object.assign(result, state);
      if (state.state === 'missing') return { ...result, reason: 'no such VM on the hypervisor' };
      const heldDown = await records.readHeldDown(vm);
      if (heldDown) {
        if (state.state === 'shut-off') result.heldDown = heldDown;
        // Running again (the guardian, or a person, started it): the record has served its purpose.
        else if (state.state === 'running') await records.removeHeldDown(vm);
      }
      if (state.state === 'paused' || state.state === 'pmsuspended')
        return { ...result, reason: `VM is ${state.detail}; left as found` };
      if (state.state === 'transitional') return { ...result, reason: `VM is ${state.detail}; left alone` };
      if (!(await driver.persistent(vm)))
        return { ...result, reason: 'VM is transient (it would vanish when shut down); left running' };
      const disks = await driver.disks(vm);
      if (disks.length === 0) return { ...result, reason: 'VM has no disk to image' };
      const unsupported = disks.map(unsupportedDiskReason).filter(Boolean);
      if (unsupported.length > 0) return { ...result, reason: `${unsupported.join('; ')}: VM left as it was` };
      result.disks = await Promise.all(disks.map(async (d) => ({ ...d, ...(await imaging.diskInfo(d)) })));
      // Streamed from the shut-off VM into the repository, its disks never land in the image area.
      const streamed = config.store?.engine === 'restic' && services.vmPolicy(hv.host, vm).streamWhileDown;
      result.requiredBytes = streamed
        ? 0
        : result.disks.reduce((sum, d) => sum + d.allocatedBytes, 0) + hv.spaceMarginBytes;
      const room = await makeRoom(sets, vm, stamp, result.requiredBytes);
      result.deleted = room.deleted;
      result.freeBytes = room.freeBytes;
      if (!room.ok) {
        return {
          ...result,
          reason: `not enough space in ${sets.where}: ${room.freeBytes} bytes free, ${result.requiredBytes} needed`,
        };
      }
      return { ...result, ok: true };
    });
  }

  /**
   * Writes the held-down record, then asks the guest to shut down. The record is on the hypervisor before the
   * request, so no way out of this run (even a terminate) leaves the VM off without a trace.
   */
  async function requestShutdown(vm: string, budgetSeconds: number): Promise<void> {
    await withHypervisor(async ({ driver, records }) => {
      const existing = await records.readHeldDown(vm);
      await records.writeHeldDown({
        vm,
        owner: currentRun(),
        since: existing?.since ?? new Date().toISOString(),
        budgetSeconds,
      });
      await driver.requestShutdown(vm);
    });
  }

  /**
   * Polls until the VM is shut off or the timeout passes; heartbeats so a dead worker is noticed. libvirtd
   * restarting meanwhile (a transient error) is waited out within the timeout: the guest goes on shutting down.
   */
  async function awaitShutOff(vm: string, timeoutSeconds: number): Promise<'shut-off' | 'timeout'> {
    const deadline = Date.now() + timeoutSeconds * 1000;
    let last = '';
    return withHypervisor(
      async ({ driver }) => {
        for (;;) {
          const state = await stateOnceAnswered(driver, vm, deadline, (why) => (last = why));
          last = state.detail;
          if (state.state === 'shut-off') return 'shut-off';
          if (state.state === 'missing')
            throw ApplicationFailure.nonRetryable(`${vm} disappeared while stopping`, 'VmMissing');
          if (Date.now() >= deadline) return 'timeout';
          await sleep(POLL_MS);
        }
      },
      () => ({ vm, state: last }),
    );
  }

  async function forceOff(vm: string): Promise<void> {
    await withHypervisor(({ driver }) => driver.forceOff(vm));
  }

  /**
   * Images one disk of a shut-off VM. The remote copy ends with this activity (cancel, timeout, stall), is
   * bounded by `timeoutSeconds` on the hypervisor itself, and a retry ends any copy an earlier attempt left.
   */
  async function createImage(vm: string, stamp: string, disk: PreparedDisk, timeoutSeconds: number): Promise<string> {
    const progress: ImagingProgress = { vm, disk: disk.target, step: 'imaging', readBytes: 0, writtenBytes: 0 };
    return withHypervisor(
      async ({ driver, sets, imaging, hv }) => {
        // Imaging a disk the guest is writing would give a torn image: refuse unless it is off. A libvirtd
        // restart between two disks' copies is waited out (the downtime budget bounds it all).
        const state = await stateOnceAnswered(driver, vm, Date.now() + timeoutSeconds * 1000);
        if (state.state !== 'shut-off')
          throw ApplicationFailure.nonRetryable(`${vm} is ${state.detail}, not shut off: not imaging`, 'VmNotShutOff');
        const final = sets.imagePath(vm, stamp, disk, disk.imageFormat);
        return stallsAreFinal(() =>
          imaging.createImage(disk, disk.imageFormat, final, {
            timeoutSeconds,
            stallSeconds: hv.stallSeconds,
            signal: Context.current().cancellationSignal,
            onProgress: (p) => Object.assign(progress, p),
          }),
        );
      },
      () => progress,
    );
  }

  /** Checks an image (it reads only the image, so the VM may be running again meanwhile). */
  async function verifyImage(vm: string, stamp: string, disk: PreparedDisk): Promise<VmImage> {
    const progress: ImagingProgress = { vm, disk: disk.target, step: 'verifying', readBytes: 0, writtenBytes: 0 };
    return withHypervisor(
      async ({ sets, imaging, hv }) => {
        const path = sets.imagePath(vm, stamp, disk, disk.imageFormat);
        const image = await stallsAreFinal(() =>
          imaging.verifyImage(path, disk.imageFormat, disk.virtualSize, {
            timeoutSeconds: 24 * 3600,
            stallSeconds: hv.stallSeconds,
            signal: Context.current().cancellationSignal,
            onProgress: (p) => Object.assign(progress, p),
          }),
        );
        return { disk: disk.target, sourcePath: disk.source, ...image };
      },
      () => progress,
    );
  }

  /**
   * Writes the set's manifest (images, the VM's disk map and its definition without secrets): from then on
   * the set counts as verified, for retention and restores.
   */
  async function recordVerifiedSet(vm: string, stamp: string, images: VmImage[]): Promise<string> {
    return withHypervisor(async ({ driver, sets }) => {
      const domainXml = await driver.definition(vm);
      await sets.writeManifest(
        vm,
        stamp,
        newManifest({
          vm,
          stamp,
          domainXml,
          images: images.map((image) => ({
            disk: image.disk,
            file: image.path.slice(image.path.lastIndexOf('/') + 1),
            format: image.format ?? 'raw',
            bytes: image.bytes,
            ...(image.allocatedBytes !== undefined ? { allocatedBytes: image.allocatedBytes } : {}),
            virtualSize: image.virtualSize,
            sha256: image.sha256,
            ...(image.sourcePath ? { source: { path: image.sourcePath } } : {}),
          })),
        }),
      );
      return domainXml;
    });
  }

  /**
   * Starts the VM if it is not running (resumes it if it came back paused) and waits until the hypervisor
   * says it runs, then removes its held-down record. Idempotent. Every failure is retryable except a VM that
   * no longer exists: libvirtd restarting or the link dropping must not leave a VM down.
   * `watchSeconds`: a shutdown request may still be under way (the run was aborted while stopping): a VM that
   * is "running" now may power off in a moment, so keep watching it that long and start it if it does.
   */
  async function ensureRunning(vm: string, watchSeconds = 0): Promise<{ started: boolean }> {
    try {
      return await withHypervisor(async ({ driver, records }) => {
        const watchUntil = Date.now() + watchSeconds * 1000;
        let deadline = watchUntil + START_CONFIRM_SECONDS * 1000;
        let started = false;
        for (;;) {
          const state = await driver.state(vm);
          if (state.state === 'running' && (started || Date.now() >= watchUntil)) {
            await records.removeHeldDown(vm);
            return { started };
          }
          if (state.state === 'missing') throw ApplicationFailure.nonRetryable(`${vm} no longer exists`, 'VmMissing');
          if (state.state === 'shut-off') await driver.start(vm);
          if (state.state === 'paused' || state.state === 'pmsuspended') await driver.resume(vm, state.state);
          if (state.state !== 'running' && state.state !== 'transitional') {
            started = true;
            deadline = Math.min(deadline, Date.now() + START_CONFIRM_SECONDS * 1000);
          }
          if (Date.now() >= deadline)
            throw ApplicationFailure.retryable(`${vm} is still ${state.detail}`, 'VmNotRunning');
          await sleep(POLL_MS);
        }
      });
    } catch (err) {
      if (err instanceof ApplicationFailure && err.type === 'VmMissing') throw err;
      throw ApplicationFailure.retryable(`starting ${vm}: ${(err as Error).message}`, 'RestartFailed');
    }
  }

  /** Ends copies still running for the set and removes its partial files (finished images stay). */
  async function discardPartials(vm: string, stamp: string): Promise<void> {
    await withHypervisor(async ({ sets, imaging }) => {
      await imaging.endAll(sets.setDir(vm, stamp));
      await sets.removePartials(vm, stamp);
    });
  }

  /** Ends every copy or check still running for the VM, whichever run started it (the guardian's first step). */
  async function endVmCopies(vm: string): Promise<void> {
    await withHypervisor(({ sets, imaging }) => imaging.endAll(sets.vmDir(vm)));
  }

  /** Keeps the newest `keep` verified sets (see planRetention: never the newest verified, never this run's). */
  async function applyRetention(vm: string, keep: number, current: string) {
    return withHypervisor(({ sets }) => retain(sets, vm, { keepLast: keep, keepWeekly: 0, keepMonthly: 0 }, current));
  }

  /** VMs held down right now, for the guardian and `status`. */
  /** Each with how long it has been down (on this clock, like the record's time) and whether its run is closed. */
  async function listHeldDown(): Promise<(HeldDownRecord & { runClosed: boolean; downSeconds: number })[]> {
    return withHypervisor(async ({ records }) => {
      const held = await records.listHeldDown();
      setVmsHeldDown(held.length, services.hypervisors.hv.name); // the guardian reads them every few minutes: the gauge stays current
      return Promise.all(
        held.map(async (r) => ({
          ...r,
          runClosed: await isClosed(r.owner),
          downSeconds: Math.max(0, (Date.now() - Date.parse(r.since)) / 1000),
        })),
      );
    });
  }

  return {
    listHypervisors,
    checkHypervisor,
    getWeeklySettings,
    resolveVms,
    lockVm,
    unlockVm,
    preflightVm,
    requestShutdown,
    awaitShutOff,
    forceOff,
    createImage,
    verifyImage,
    recordVerifiedSet,
    ensureRunning,
    discardPartials,
    endVmCopies,
    applyRetention,
    listHeldDown,
  };
}

/** A hung copy would hang again: the cycle gives up on it at once and restarts the VM. */
async function stallsAreFinal<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof StalledError) throw ApplicationFailure.nonRetryable(err.message, 'Stalled');
    throw err;
  }
}
