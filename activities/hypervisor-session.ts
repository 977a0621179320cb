import type { Config, HypervisorConfig } from '../config/schema';
import { DiskImaging } from '../adapters/hypervisor/disk-imaging';
import { LibvirtDriver } from '../adapters/hypervisor/libvirt-driver';
import { Overlays } from '../adapters/hypervisor/overlays';
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
  sets: RemoteImageSets;
  imaging: DiskImaging;
  records: VmRecords;
  overlays: Overlays;
}

/**
 * One SSH session to the hypervisor for the activity, closed after it. Every VM activity heartbeats
 * (`details`, shown in the Web UI), so a worker that dies mid-step is noticed within the heartbeat timeout.
 */
export async function withHypervisorSession<T>(
  config: Config,
  openSsh: (hostKey: string) => Promise<SshSession>,
  use: (session: HypervisorSession) => Promise<T>,
  details: () => unknown = () => undefined,
): Promise<T> {
  const hv = requireSection(config.hypervisor, 'hypervisor');
  const ssh = await openSsh(hv.host);
  try {
    const driver = new LibvirtDriver(ssh, hv.uri);
    return await whileHeartbeating(details, () =>
      use({
        hv,
        ssh,
        driver,
        sets: new RemoteImageSets(ssh, hv.imageArea),
        imaging: new DiskImaging(ssh),
        records: new VmRecords(ssh, hv.imageArea),
        overlays: new Overlays(ssh, driver),
      }),
    );
  } finally {
    ssh.close();
  }
}
