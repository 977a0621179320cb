import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { Config, HypervisorConfig } from '../config/schema';
import { storeTaskQueue } from '../config/temporal-connection';
import { planRetention, setsThatMayMakeRoom } from '../domain/retention';
import type { VmImage, WeeklySettings } from '../domain/weekly-summary';
import { unsafeVmNameReason } from '../domain/vm-names';
import type { HypervisorDriver, VmDisk, VmPowerState } from '../adapters/hypervisor/driver';
import { ImageArea, type DiskInfo } from '../adapters/image-sets/image-area';
import { LibvirtDriver } from '../adapters/hypervisor/libvirt-driver';
import type { SshSession } from '../adapters/ssh/ssh-session';
import { requireSection } from './config-section';
import { whileHeartbeating } from './heartbeat';

export interface HypervisorDeps {
  config: Config;
  openSsh: (hostKey: string) => Promise<SshSession>;
  now?: () => Date;
}

export type PreparedDisk = VmDisk & DiskInfo;

export interface Preflight {
  ok: boolean;
  reason?: string;
  state: VmPowerState;
  detail: string;
  disks: PreparedDisk[];
  requiredBytes: number;
  freeBytes: number;
  /** Image sets removed to make room (only ever older than a newer verified set). */
  deleted: string[];
}

const POLL_MS = 500;
const START_CONFIRM_SECONDS = 120;
const SUPPORTED_FORMATS = new Set(['qcow2', 'raw']);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function createHypervisorActivities({ config, openSsh }: HypervisorDeps) {
  /**
   * One SSH session to the hypervisor for the activity. Every VM activity heartbeats (`details`, shown in the
   * Web UI), so a worker that dies mid-step is noticed within the heartbeat timeout.
   */
  async function withHypervisor<T>(
    use: (driver: HypervisorDriver, area: ImageArea, hv: HypervisorConfig) => Promise<T>,
    details: () => unknown = () => undefined,
  ) {
    const hv = requireSection(config.hypervisor, 'hypervisor');
    const ssh = await openSsh(hv.host);
    try {
      return await whileHeartbeating(details, () =>
        use(new LibvirtDriver(ssh, hv.uri), new ImageArea(ssh, hv.imageArea), hv),
      );
    } finally {
      ssh.close();
    }
  }

  async function getWeeklySettings(): Promise<WeeklySettings> {
    const hv = requireSection(config.hypervisor, 'hypervisor');
    const defaultPolicy = { shutdownTimeoutSeconds: hv.shutdownTimeoutSeconds, forceOff: hv.forceOff };
    const policy = Object.fromEntries(Object.entries(hv.perVm).map(([vm, p]) => [vm, { ...defaultPolicy, ...p }]));
    return {
      vms: hv.vms,
      concurrency: hv.concurrency,
      keepImages: hv.keepImages,
      store: config.store !== undefined,
      storeTaskQueue: storeTaskQueue(config),
      heartbeatTimeoutSeconds: config.transfer.heartbeatTimeoutSeconds,
      policy,
      defaultPolicy,
    };
  }

  /** The VMs this run covers: the requested ones (missing ones included, to be reported), or all running. */
  async function resolveVms(requested?: string[]): Promise<string[]> {
    return withHypervisor(async (driver, _area, hv) => {
      const wanted = requested?.length ? requested : hv.vms;
      if (wanted !== 'all-running') return wanted;
      return (await driver.listVms()).filter((v) => v.state === 'running').map((v) => v.name);
    });
  }

  /** Everything checked before a VM goes down: exists, disks known and supported, room for its images. */
  async function preflightVm(vm: string, stamp: string): Promise<Preflight> {
    return withHypervisor(async (driver, area, hv) => {
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
      if (state.state === 'transitional') return { ...result, reason: `VM is ${state.detail}; left alone` };
      const disks = await driver.disks(vm);
      if (disks.length === 0) return { ...result, reason: 'VM has no file-backed disk to image' };
      const unsupported = disks.find((d) => !SUPPORTED_FORMATS.has(d.format));
      if (unsupported)
        return {
          ...result,
          reason: `disk ${unsupported.target} has format ${unsupported.format} (qcow2 and raw are supported)`,
        };
      result.disks = await Promise.all(
        disks.map(async (d) => ({ ...d, ...(await area.diskInfo(d.source, d.format)) })),
      );
      result.requiredBytes = result.disks.reduce((sum, d) => sum + d.allocatedBytes, 0) + hv.spaceMarginBytes;
      result.freeBytes = await area.freeBytes();

      if (result.freeBytes < result.requiredBytes) {
        for (const set of setsThatMayMakeRoom(await area.listSets(vm), stamp)) {
          await area.removeSet(vm, set.stamp);
          result.deleted.push(`${vm}/${set.stamp} (${set.why})`);
          result.freeBytes = await area.freeBytes();
          if (result.freeBytes >= result.requiredBytes) break;
        }
      }
      if (result.freeBytes < result.requiredBytes) {
        return {
          ...result,
          reason: `not enough space in the image area ${hv.imageArea}: ${result.freeBytes} bytes free, ${result.requiredBytes} needed`,
        };
      }
      return { ...result, ok: true };
    });
  }

  async function vmState(vm: string) {
    return withHypervisor((driver) => driver.state(vm));
  }

  async function requestShutdown(vm: string): Promise<void> {
    await withHypervisor((driver) => driver.requestShutdown(vm));
  }

  /** Polls until the VM is shut off or the timeout passes; heartbeats so a dead worker is noticed. */
  async function awaitShutOff(vm: string, timeoutSeconds: number): Promise<'shut-off' | 'timeout'> {
    const deadline = Date.now() + timeoutSeconds * 1000;
    let last = '';
    return withHypervisor(
      async (driver) => {
        for (;;) {
          const state = await driver.state(vm);
          last = state.detail;
          if (state.state === 'shut-off') return 'shut-off';
          if (state.state === 'missing') throw ApplicationFailure.nonRetryable(`${vm} disappeared while stopping`);
          if (Date.now() >= deadline) return 'timeout';
          await sleep(POLL_MS);
        }
      },
      () => ({ vm, state: last }),
    );
  }

  async function forceOff(vm: string): Promise<void> {
    await withHypervisor((driver) => driver.forceOff(vm));
  }

  async function createImage(vm: string, stamp: string, disk: PreparedDisk): Promise<string> {
    return withHypervisor(
      async (driver, area) => {
        // Imaging a disk the guest is writing would give a torn image: refuse unless it is off.
        const state = await driver.state(vm);
        if (state.state !== 'shut-off')
          throw ApplicationFailure.nonRetryable(`${vm} is ${state.detail}, not shut off: not imaging`);
        return area.createImage(vm, stamp, disk, Context.current().cancellationSignal);
      },
      () => ({ vm, disk: disk.target, step: 'imaging' }),
    );
  }

  async function verifyImage(vm: string, stamp: string, disk: PreparedDisk): Promise<VmImage> {
    return withHypervisor(
      async (_driver, area) => {
        const path = area.imagePath(vm, stamp, disk);
        const image = await area.verifyImage(path, disk.format, disk.virtualSize, Context.current().cancellationSignal);
        return { disk: disk.target, ...image };
      },
      () => ({ vm, disk: disk.target, step: 'verifying' }),
    );
  }

  /** Writes the set's manifest: from then on the set counts as verified (for retention and restores). */
  async function recordVerifiedSet(vm: string, stamp: string, images: VmImage[]): Promise<void> {
    await withHypervisor((_driver, area) =>
      area.writeManifest(vm, stamp, {
        vm,
        stamp,
        images,
        verifiedAt: new Date().toISOString(),
        tool: 'cluster-backup',
      }),
    );
  }

  /**
   * Starts the VM if it is not running and waits until the hypervisor says it runs. Idempotent.
   * `watchSeconds`: a shutdown request may still be under way (the run was aborted while stopping): a VM
   * that is "running" now may power off in a moment, so keep watching it that long and start it if it does.
   */
  async function ensureRunning(vm: string, watchSeconds = 0): Promise<void> {
    await withHypervisor(async (driver) => {
      const watchUntil = Date.now() + watchSeconds * 1000;
      let deadline = watchUntil + START_CONFIRM_SECONDS * 1000;
      let started = false;
      for (;;) {
        const state = await driver.state(vm);
        if (state.state === 'running' && (started || Date.now() >= watchUntil)) return;
        if (state.state === 'missing') throw ApplicationFailure.nonRetryable(`${vm} no longer exists`, 'VmMissing');
        if (state.state === 'shut-off' || state.state === 'paused') {
          await driver.start(vm);
          started = true;
          deadline = Math.min(deadline, Date.now() + START_CONFIRM_SECONDS * 1000);
        }
        if (Date.now() >= deadline)
          throw ApplicationFailure.retryable(`${vm} is still ${state.detail}`, 'VmNotRunning');
        await sleep(POLL_MS);
      }
    });
  }

  async function discardPartials(vm: string, stamp: string): Promise<void> {
    await withHypervisor((_driver, area) => area.removePartials(vm, stamp));
  }

  /** Keeps the newest `keep` verified sets (see planRetention: never the newest verified, never this run's). */
  async function applyRetention(
    vm: string,
    keep: number,
    current: string,
  ): Promise<{ deleted: string[]; freeBytes: number }> {
    return withHypervisor(async (_driver, area) => {
      const plan = planRetention(await area.listSets(vm), { keepLast: keep, keepWeekly: 0, keepMonthly: 0 }, current);
      for (const set of plan.delete) await area.removeSet(vm, set.stamp);
      return { deleted: plan.delete.map((d) => `${vm}/${d.stamp} (${d.why})`), freeBytes: await area.freeBytes() };
    });
  }

  return {
    getWeeklySettings,
    resolveVms,
    preflightVm,
    vmState,
    requestShutdown,
    awaitShutOff,
    forceOff,
    createImage,
    verifyImage,
    recordVerifiedSet,
    ensureRunning,
    discardPartials,
    applyRetention,
  };
}
