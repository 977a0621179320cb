/**
 * Benchmark (not a test): how long a VM is down for one backup, `imaging: offline` vs `imaging: overlay`,
 * against the floor measured in the same run (a plain shutdown + start + boot of the same guest, no backup).
 * One guest with a raw data disk of random data, per size (BENCH_DISK_MIB, default 256,1024,4096). Downtime
 * here = shutdown requested -> the guest says it is ready again (its service is back). The product's own
 * activities do the work (over SSH to a sandbox libvirtd + QEMU), as the VM cycle would call them.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createHypervisorActivities, type PreparedDisk } from '../activities/hypervisor';
import { createOverlayActivities } from '../activities/overlay';
import { createServices } from '../activities/services';
import { SshSession } from '../adapters/ssh/ssh-session';
import { parseConfig } from '../config/load';
import { startHypervisor, type SandboxGuest } from '../scripts/sandbox/libvirt-host';
import { startSshHost } from '../scripts/sandbox/sshd-host';

const SIZES = (process.env.BENCH_DISK_MIB ?? '256,1024,4096').split(',').map(Number);
const run = <A extends unknown[], R>(fn: (...args: A) => Promise<R>, ...args: A): Promise<R> =>
  new MockActivityEnvironment().run(fn, ...args);
const seconds = (ms: number) => (ms / 1000).toFixed(1).padStart(6);

async function main(): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'cluster-backup-bench-vm-'));
  const hypervisor = await startHypervisor(join(root, 'libvirt'));
  const host = await startSshHost({ dir: join(root, 'ssh'), address: '127.0.0.7' });
  try {
    const config = parseConfig(
      {
        hosts: { hypervisor: host.config },
        hypervisor: {
          host: 'hypervisor',
          uri: hypervisor.uri,
          imageArea: join(root, 'images'),
          spaceMarginBytes: 1 << 20,
          overlayReserveBytes: 64 << 20,
        },
      },
      'bench',
      root,
    );
    const deps = {
      config,
      services: createServices({ config, openSsh: (key: string) => SshSession.connect(key, config.hosts[key]!) }),
    };
    const hv = createHypervisorActivities(deps);
    const ov = createOverlayActivities(deps);
    let stampSeconds = 10;
    let boots = 0;
    let guest: SandboxGuest;
    const down = async (vm: string) => {
      await run(hv.requestShutdown, vm, 3600);
      if ((await run(hv.awaitShutOff, vm, 60)) !== 'shut-off') throw new Error(`${vm} did not shut down`);
    };
    const up = async (vm: string) => {
      await run(hv.ensureRunning, vm);
      await guest.waitReady(++boots, 180_000);
    };
    const image = async (vm: string, stamp: string, disks: PreparedDisk[], frozen: boolean) => {
      for (const disk of disks) await run(frozen ? ov.createFrozenImage : hv.createImage, vm, stamp, disk, 3600);
    };
    const verify = async (vm: string, stamp: string, disks: PreparedDisk[]) => {
      const images = [];
      for (const disk of disks) images.push(await run(hv.verifyImage, vm, stamp, disk));
      await run(hv.recordVerifiedSet, vm, stamp, images);
    };

    console.log('VM downtime per backup: shutdown requested -> guest ready again (seconds; overhead over the floor)');
    console.log(
      '  data disk | floor (mean of 3: runs)   | offline (+over) | overlay (+over) [putting overlays on] | while up: copy+verify+merge',
    );
    for (const mib of SIZES) {
      const vm = `cbtest-bench-${mib}`;
      const data = join(root, 'libvirt', `data-${mib}.raw`);
      execFileSync('sh', ['-c', `head -c ${mib}M /dev/urandom > "$1"`, 'sh', data]);
      guest = await hypervisor.defineGuest({
        name: vm,
        extraDisks: [
          `<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='${data}'/><target dev='vdb' bus='virtio'/></disk>`,
        ],
      });
      boots = 0;
      await up(vm);
      const stamp = () => `20261127T0000${stampSeconds++}Z`;

      const measureFloor = async () => {
        const start = Date.now();
        await down(vm);
        await up(vm);
        return Date.now() - start;
      };
      // The machine's load drifts (a 2-core box shared with other work): floors before, between and after.
      const floors = [await measureFloor()];
      let t = Date.now();

      const offlineStamp = stamp();
      const offlinePre = await run(hv.preflightVm, vm, offlineStamp);
      t = Date.now();
      await down(vm);
      await image(vm, offlineStamp, offlinePre.disks, false);
      await up(vm);
      const offline = Date.now() - t;
      await verify(vm, offlineStamp, offlinePre.disks); // the VM runs again meanwhile (the cycle's order)

      floors.push(await measureFloor());
      const overlayStamp = stamp();
      const overlayPre = await run(hv.preflightVm, vm, overlayStamp);
      const room = await run(ov.overlayPreflight, vm, overlayPre.disks);
      if (!room.ok) throw new Error(room.reason);
      t = Date.now();
      await down(vm);
      const overlaysAt = Date.now();
      await run(ov.createOverlays, vm, overlayStamp, overlayPre.disks);
      const overlaysMs = Date.now() - overlaysAt;
      await up(vm);
      const overlay = Date.now() - t;
      t = Date.now();
      await image(vm, overlayStamp, overlayPre.disks, true);
      await verify(vm, overlayStamp, overlayPre.disks);
      await run(ov.mergeOverlays, vm);
      const whileUp = Date.now() - t;
      floors.push(await measureFloor());
      const floor = floors.reduce((a, b) => a + b, 0) / floors.length;

      const over = (ms: number) => `${seconds(ms)} (${ms - floor >= 0 ? '+' : ''}${((ms - floor) / 1000).toFixed(1)})`;
      console.log(
        `  ${`${mib} MiB`.padStart(9)} | ${seconds(floor)} (${floors.map((f) => (f / 1000).toFixed(1)).join(', ')}) | ${over(offline).padStart(15)} | ${over(overlay).padStart(15)} [${(overlaysMs / 1000).toFixed(2)}] | ${seconds(whileUp)}` +
          `  overlay ${overlay - floor <= 2000 ? 'within' : 'NOT within'} floor + 2 s`,
      );
      await hypervisor.virsh('destroy', '--domain', vm).catch(() => undefined);
      rmSync(data, { force: true });
      rmSync(join(root, 'images', vm), { recursive: true, force: true });
    }
  } finally {
    await Promise.all([hypervisor.stop(), host.stop()]);
    rmSync(root, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
