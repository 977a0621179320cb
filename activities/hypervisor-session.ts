import type { Config, HypervisorConfig } from '../config/schema';
import { DiskImaging } from '../adapters/hypervisor/disk-imaging';
import { LibvirtDriver } from '../adapters/hypervisor/libvirt-driver';
import { Overlays } from '../adapters/hypervisor/overlays';
import { QemuImg } from '../adapters/hypervisor/qemu-img';
import { RemoteDisks } from '../adapters/hypervisor/remote-disk';
import { VmRecords } from '../adapters/hypervisor/vm-records';
import { RemoteImageSets } from '../adapters/image-sets/remote-image-sets';
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

  /** One session for `use`, without heartbeats (the activity heartbeats itself, or is short). */
  async open<T>(use: (session: HypervisorSession) => Promise<T>): Promise<T> {
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
    return this.open((session) => whileHeartbeating(details, () => use(session)));
  }
}
