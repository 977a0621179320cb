import { Context } from '@temporalio/activity';
import type { Config, HypervisorConfig } from '../config/schema';
import { DiskImaging } from '../adapters/hypervisor/disk-imaging';
import { LibvirtDriver } from '../adapters/hypervisor/libvirt-driver';
import { Overlays } from '../adapters/hypervisor/overlays';
import { QemuImg } from '../adapters/hypervisor/qemu-img';
import { RemoteDisks } from '../adapters/hypervisor/remote-disk';
import { VmRecords } from '../adapters/hypervisor/vm-records';
import { RemoteImageSets } from '../adapters/image-sets/remote-image-sets';
import { isHypervisorOutage, RemoteCommandError } from '../adapters/ssh/remote-command-error';
import type { SshSession } from '../adapters/ssh/ssh-session';
import { requireSection } from './config-section';
import { whileHeartbeating } from './heartbeat';

/** Everything an activity drives on the hypervisor, over one SSH session. */
export interface HypervisorSession {
  hv: HypervisorConfig;
  ssh: SshSession;
  driver: LibvirtDriver;
  qemuImg: QemuImg;
  sets: RemoteImageSets;
  imaging: DiskImaging;
  records: VmRecords;
  overlays: Overlays;
  disks: RemoteDisks;
}

/**
 * Sessions to one configured hypervisor (the worker builds one per hypervisor, each serving that host's task
 * queues); each activity opens one SSH session with its adapters over it, closed after it.
 */
export class HypervisorSessions {
  constructor(
    private readonly config: Config,
    private readonly openSsh: (hostKey: string) => Promise<SshSession>,
    /** Which of config.hypervisors (default: the first, which the main task queue serves). */
    private readonly name?: string,
  ) {}

  /** The hypervisor's section (NotConfigured without one). */
  get hv(): HypervisorConfig {
    const { hypervisors } = this.config;
    const hv = this.name === undefined ? hypervisors[0] : hypervisors.find((h) => h.name === this.name);
    return requireSection(hv, this.name === undefined ? 'hypervisor' : `hypervisors[name=${this.name}]`);
  }

  /**
   * One session for `use`, without heartbeats of its own (the activity heartbeats itself, or is short). A
   * hypervisor outage (SSH unreachable, libvirtd not answering) is waited out: `use` runs again on a new
   * session, with backoff, for up to hypervisorOutageSeconds and within the activity's own time.
   */
  open<T>(use: (session: HypervisorSession) => Promise<T>): Promise<T> {
    return outagesWaitedOut(this.hv, () => this.once(use), keepHeartbeatDetails);
  }

  /** One session for `use` at once, without waiting out an outage (the check of a hypervisor at a run's start). */
  async once<T>(use: (session: HypervisorSession) => Promise<T>): Promise<T> {
    const hv = this.hv;
    const ssh = await this.openSsh(hv.host);
    try {
      const driver = new LibvirtDriver(ssh, hv.uri);
      const qemuImg = new QemuImg(ssh);
      return await use({
        hv,
        ssh,
        driver,
        qemuImg,
        sets: new RemoteImageSets(ssh, hv.imageArea),
        imaging: new DiskImaging(ssh, qemuImg),
        records: new VmRecords(ssh, hv.imageArea),
        overlays: new Overlays(ssh, driver, qemuImg),
        disks: new RemoteDisks(ssh),
      });
    } finally {
      ssh.close();
    }
  }

  /**
   * One session for `use`, heartbeating `details` (shown in the Web UI) all along, so a worker that dies
   * mid-step is noticed within the heartbeat timeout. Every VM activity of the weekly cycle runs so.
   */
  async heartbeating<T>(
    use: (session: HypervisorSession) => Promise<T>,
    details: () => unknown = () => undefined,
  ): Promise<T> {
    return whileHeartbeating(details, () =>
      outagesWaitedOut(
        this.hv,
        () => this.once(use),
        () => undefined,
      ),
    );
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** An activity that does not heartbeat its own details: its last ones are sent again while it waits. */
function keepHeartbeatDetails(): void {
  const ctx = activityContext();
  ctx?.heartbeat(ctx.info.heartbeatDetails);
}

function activityContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined; // a CLI command, outside any activity
  }
}

/**
 * Runs `attempt` until it succeeds or fails with something other than a hypervisor outage; an outage is
 * retried with backoff (2 s doubling to 10 s, under any heartbeat timeout) while it has lasted less than
 * hypervisorOutageSeconds and the activity has time left. Past that, the outage's own error goes on
 * (Temporal's retry policy then decides).
 */
export async function outagesWaitedOut<T>(
  hv: HypervisorConfig,
  attempt: () => Promise<T>,
  beat: () => void,
): Promise<T> {
  const info = activityContext()?.info;
  const activityEnd = info ? info.currentAttemptScheduledTimestampMs + info.startToCloseTimeoutMs : Infinity;
  let outageSince: number | undefined;
  for (let delay = 2000; ; delay = Math.min(delay * 2, 10_000)) {
    try {
      return await attempt();
    } catch (err) {
      if (!(err instanceof RemoteCommandError) || !isHypervisorOutage(err.remote)) throw err;
      outageSince ??= Date.now();
      const until = Math.min(outageSince + hv.hypervisorOutageSeconds * 1000, activityEnd - 15_000);
      if (Date.now() + delay > until) {
        const seconds = Math.round((Date.now() - outageSince) / 1000);
        err.message = `${err.message} (hypervisor ${hv.name} not answering; waited ${seconds} s)`;
        throw err;
      }
      beat();
      await sleep(delay);
      beat();
    }
  }
}
