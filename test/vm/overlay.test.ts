import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createHypervisorActivities, type PreparedDisk } from '../../activities/hypervisor';
import { createOverlayActivities } from '../../activities/overlay';
import { createServices } from '../../activities/services';
import { OVERLAY_MARK, overlayDisksFromXml, parseBlockJob } from '../../adapters/hypervisor/overlays';
import { SshSession } from '../../adapters/ssh/ssh-session';
import { parseConfig } from '../../config/load';
import type { Config } from '../../config/schema';
import { startWeekly } from '../../scripts/commands/run-vms';
import { connectClient } from '../../scripts/commands/temporal-client';
import type { WeeklySummary } from '../../domain/weekly-summary';
import { startHypervisor, type SandboxGuest, type SandboxHypervisor } from '../../scripts/sandbox/libvirt-host';
import { startSshHost, type SandboxSshHost } from '../../scripts/sandbox/sshd-host';
import { PROJECT_ROOT } from '../../scripts/sandbox/paths';
import { guestWrite as writeIntoGuest, holds, markers, qemuPid, tickOf } from '../helpers/guest-disk';
import { inProcessWorker, quietWorkerLogs, testDevServer } from '../helpers/temporal';

quietWorkerLogs();

const QCOW = 'cbtest-overlay-qcow2';
const RAW = "cbtest-overlay raw'data"; // a space and a quote in the name, and in its data disk's file name
const MiB = 1024 * 1024;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

describe('imaging on qcow2 overlays on a real libvirt + QEMU hypervisor', { concurrency: false }, () => {
  let root: string;
  let hypervisor: SandboxHypervisor;
  let sshHost: SandboxSshHost;
  let config: Config;
  let configFile: string;
  let hv: ReturnType<typeof createHypervisorActivities>;
  let ov: ReturnType<typeof createOverlayActivities>;
  const guests: Record<string, SandboxGuest> = {};
  const boots: Record<string, number> = {};
  let dataDisk: string;
  let stampSeconds = 10;
  const nextStamp = () => `20261127T0000${stampSeconds++}Z`;
  const run = <A extends unknown[], R>(fn: (...args: A) => Promise<R>, ...args: A): Promise<R> =>
    new MockActivityEnvironment().run(fn, ...args);
  /** Counts one more boot of the guest and, unless told not to, waits until it is ready (acpid listening). */
  const rebooted = async (name: string, wait = true) => {
    boots[name] = (boots[name] ?? 0) + 1;
    if (wait) await guests[name]!.waitReady(boots[name]!, 180_000);
  };
  const stopCleanly = async (vm: string) => {
    await run(hv.requestShutdown, vm, 3600);
    assert.equal(await run(hv.awaitShutOff, vm, 30), 'shut-off');
  };
  /** Shut down, overlays on, started again: the originals are frozen under a running guest. */
  const freeze = async (vm: string, stamp: string, waitForBoot = true) => {
    const preflight = await run(hv.preflightVm, vm, stamp);
    assert.ok(preflight.ok, preflight.reason);
    const room = await run(ov.overlayPreflight, vm, preflight.disks);
    assert.ok(room.ok, room.reason);
    await guests[vm]!.waitReady(boots[vm]!, 180_000); // a shutdown request before acpid listens is lost
    await stopCleanly(vm);
    const overlays = await run(ov.createOverlays, vm, stamp, preflight.disks);
    await run(hv.ensureRunning, vm);
    await rebooted(vm, waitForBoot);
    return { disks: preflight.disks, overlays };
  };
  const liveXml = (vm: string) => hypervisor.virsh('dumpxml', '--domain', vm);
  const inactiveXml = (vm: string) => hypervisor.virsh('dumpxml', '--inactive', '--domain', vm);
  const overlayFiles = () => readdirSync(join(root, 'libvirt')).filter((f) => f.includes(OVERLAY_MARK));
  const guestWrite = (vm: string, target: string, byte: number, offsetMiB: number, mib: number) =>
    writeIntoGuest(hypervisor, vm, target, byte, offsetMiB, mib);
  const assertBackOnOriginals = async (vm: string, disks: PreparedDisk[]) => {
    for (const xml of [await liveXml(vm), await inactiveXml(vm)]) {
      assert.deepEqual(overlayDisksFromXml(xml), []);
      for (const disk of disks) assert.ok(xml.includes(`file='${disk.source.replace(/'/g, '&apos;')}'`), xml);
    }
    assert.deepEqual(overlayFiles(), []);
  };
  /** Runs an overlay activity in a child process and kills it (SIGKILL) once `when` holds. */
  const killChildWhen = async (
    name: string,
    args: unknown[],
    when: (heartbeat: unknown) => boolean | Promise<boolean>,
  ) => {
    const child: ChildProcess = spawn(
      process.execPath,
      [join(PROJECT_ROOT, 'dist', 'test', 'helpers', 'overlay-in-child.js'), configFile, name, JSON.stringify(args)],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const exited = new Promise((resolve) => child.once('exit', resolve));
    let killed = false;
    for await (const line of createInterface({ input: child.stdout! })) {
      if (await when(JSON.parse(line))) {
        child.kill('SIGKILL');
        killed = true;
        break;
      }
    }
    await exited;
    assert.ok(killed, `${name} finished before it could be killed`);
  };

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'cluster-backup-ovtest-'));
    [hypervisor, sshHost] = await Promise.all([
      startHypervisor(join(root, 'libvirt'), { isolated: true }),
      startSshHost({ dir: join(root, 'hypervisor-ssh'), address: '127.0.0.8' }),
    ]);
    dataDisk = join(root, 'libvirt', "data disk 'b'.raw");
    execFileSync('sh', ['-c', `head -c ${384 * MiB} /dev/urandom > "$1"`, 'sh', dataDisk]);
    guests[QCOW] = await hypervisor.defineGuest({ name: QCOW });
    guests[RAW] = await hypervisor.defineGuest({
      name: RAW,
      diskFormat: 'raw',
      extraDisks: [
        `<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='${dataDisk.replace(/'/g, '&apos;')}'/><target dev='vdb' bus='virtio'/></disk>`,
      ],
    });
    for (const name of [QCOW, RAW]) await hypervisor.virsh('start', '--domain', name);
    await Promise.all([rebooted(QCOW), rebooted(RAW)]);
    config = parseConfig(
      {
        hosts: { hypervisor: sshHost.config },
        hypervisor: {
          host: 'hypervisor',
          uri: hypervisor.uri,
          imageArea: join(root, 'images'),
          imaging: 'overlay',
          overlayReserveBytes: 64 * MiB,
          spaceMarginBytes: MiB,
          overlayMergeTimeoutSeconds: 120,
        },
      },
      'overlay test',
      root,
    );
    configFile = join(root, 'config.json');
    writeFileSync(configFile, JSON.stringify(config));
    const deps = {
      config,
      services: createServices({ config, openSsh: (key: string) => SshSession.connect(key, config.hosts[key]!) }),
    };
    hv = createHypervisorActivities(deps);
    ov = createOverlayActivities(deps);
  });

  after(async () => {
    await Promise.all([hypervisor?.stop(), sshHost?.stop()]);
    rmSync(root, { recursive: true, force: true });
  });

  it('images the clean-shutdown state while the guest runs and writes, then merges its writes back live', async () => {
    const stamp = nextStamp();
    const { disks, overlays } = await freeze(QCOW, stamp);
    const [vda] = disks;
    assert.equal(overlays.length, 1);
    assert.equal(overlays[0]!.base, vda!.source);
    assert.deepEqual(
      overlayDisksFromXml(await liveXml(QCOW)).map((d) => [d.target, d.overlay, d.base]),
      [['vda', overlays[0]!.overlay, vda!.source]],
      'the guest runs on the overlay, over the original',
    );
    const pid = qemuPid(QCOW);
    const frozenHash = sha256(vda!.source);

    await sleep(2500); // the guest ticks into its overlay meanwhile
    const image = await run(ov.createFrozenImage, QCOW, stamp, vda!, 600);
    const verified = await run(hv.verifyImage, QCOW, stamp, vda!);
    await run(hv.recordVerifiedSet, QCOW, stamp, [verified]);
    const duringCopy = markers(root, overlays[0]!.overlay, 'qcow2');
    assert.equal(duringCopy[0], 'cbguest boot 2', 'the guest booted on its overlay');
    assert.ok(tickOf(duringCopy[2]) >= 2, `the guest writes while it is imaged: ${duringCopy[2]}`);
    assert.equal(sha256(vda!.source), frozenHash, 'the original stayed frozen while the guest wrote');

    const stored = markers(root, image, 'qcow2');
    assert.deepEqual(stored.slice(0, 2), ['cbguest boot 1', 'cbguest clean-shutdown'], 'the image is the clean state');
    assert.equal(verified.sha256, sha256(image));

    const merged = await run(ov.mergeOverlays, QCOW);
    assert.deepEqual(merged.merged, ['vda']);
    assert.deepEqual(merged.removed, [overlays[0]!.overlay]);
    assert.equal(qemuPid(QCOW), pid, 'the guest never stopped');
    assert.match(await hypervisor.state(QCOW), /running/);
    await assertBackOnOriginals(QCOW, disks);

    // After a later clean shutdown the original holds what the guest wrote while it was imaged.
    await sleep(1500);
    await stopCleanly(QCOW);
    const after = markers(root, vda!.source, 'qcow2');
    assert.equal(after[0], 'cbguest boot 2');
    assert.equal(after[1], 'cbguest clean-shutdown');
    assert.ok(tickOf(after[2]) > tickOf(duringCopy[2]), `${after[2]} after ${duringCopy[2]}`);
    await run(hv.ensureRunning, QCOW);
    await rebooted(QCOW);
  });

  it('the weekly run in overlay mode: the VM runs again before its disks are imaged, then is merged back', async () => {
    // Its own server and worker: the worker's guardian must not merge the overlays of the tests below.
    const server = await testDevServer();
    const weeklyConfig = parseConfig(
      {
        temporal: { address: server.address, taskQueue: 'overlay-weekly' },
        hosts: config.hosts,
        hypervisors: [{ ...config.hypervisors[0]!, perVm: {} }],
        mail: { outbox: join(root, 'outbox') },
      },
      'overlay weekly test',
      root,
    );
    const worker = await inProcessWorker(weeklyConfig);
    const { client, close } = await connectClient(weeklyConfig);
    try {
      await guests[QCOW]!.waitReady(boots[QCOW]!, 180_000);
      const handle = await startWeekly(client, weeklyConfig, [QCOW], 'vms-overlay-test');
      const summary = (await handle.result()) as WeeklySummary;
      await rebooted(QCOW);
      const vm = summary.vms[0]!;
      assert.equal(vm.status, 'backed-up', JSON.stringify(vm, null, 2));
      const steps = vm.steps.map((s) => s.step);
      const at = (name: string) => steps.indexOf(name as never);
      assert.ok(at('stopping') < at('overlays') && at('overlays') < at('starting'), steps.join(' '));
      assert.ok(
        at('starting') < at('imaging-frozen') && at('imaging-frozen') < steps.lastIndexOf('merging'),
        steps.join(' '),
      );
      assert.ok(steps.lastIndexOf('merging') < at('verifying'), steps.join(' '));
      const imaging = vm.steps.find((s) => s.step === 'imaging-frozen')!;
      assert.ok(
        vm.downtimeMs! < Date.parse(imaging.startedAt) - Date.parse(vm.steps[at('stopping')]!.startedAt) + 1000,
      );
      assert.equal(markers(root, vm.images[0]!.path, 'qcow2')[1], 'cbguest clean-shutdown');
      assert.match(await hypervisor.state(QCOW), /running/);
      await assertBackOnOriginals(QCOW, [{ source: guests[QCOW]!.disk } as PreparedDisk]);
      const manifest = readFileSync(join(vm.images[0]!.path, '..', 'manifest.json'), 'utf8');
      const mentions = manifest.split('\n').filter((line) => line.includes(OVERLAY_MARK));
      assert.deepEqual(mentions, [], 'the manifest (its definition too) names the disk, not an overlay');
    } finally {
      await close();
      await worker.stop();
      await server.stop();
    }
  });

  it('freezes raw disks too (a data disk with a hostile file name) and keeps writes made during the copy', async () => {
    const stamp = nextStamp();
    const { disks, overlays } = await freeze(RAW, stamp, false);
    assert.deepEqual(
      overlays.map((o) => o.baseFormat),
      ['raw', 'raw'],
    );
    const pid = qemuPid(RAW);
    const images: string[] = [];
    for (const disk of disks) {
      images.push(await run(ov.createFrozenImage, RAW, stamp, disk, 600));
      await guestWrite(RAW, 'vdb', 0x5a, 8, 16); // written while the disks are being imaged
      await run(hv.verifyImage, RAW, stamp, disk);
    }
    assert.deepEqual(markers(root, images[0]!, 'raw').slice(0, 2), ['cbguest boot 1', 'cbguest clean-shutdown']);
    assert.ok(!holds(images[1]!, 0x5a, 8, 16), 'the data disk image is the frozen state');
    assert.ok(!holds(dataDisk, 0x5a, 8, 16), 'the original data disk stays frozen');

    await run(ov.mergeOverlays, RAW);
    assert.equal(qemuPid(RAW), pid);
    await assertBackOnOriginals(RAW, disks);
    assert.ok(holds(dataDisk, 0x5a, 8, 16), 'the write made during the copy is in the original after the merge');
    assert.match(await inactiveXml(RAW), /type='raw'/);
  });

  it('a worker killed during the copy, then during the merge: the guest runs on, a later run merges, no write is lost', async () => {
    const stamp = nextStamp();
    const { disks } = await freeze(RAW, stamp, false);
    const pid = qemuPid(RAW);
    await guestWrite(RAW, 'vdb', 0x3c, 40, 8);
    const vdb = disks.find((d) => d.target === 'vdb')!;
    const partial = join(root, 'images', RAW, stamp, 'vdb.raw.partial');
    await killChildWhen('createFrozenImage', [RAW, stamp, vdb, 600], async () => {
      while (!existsSync(partial) || statSync(partial).size === 0) await sleep(10);
      return true;
    });
    assert.equal(qemuPid(RAW), pid, 'the guest kept running');
    assert.equal(overlayDisksFromXml(await liveXml(RAW)).length, 2, 'still on its overlays');
    // The next run's preflight (or the guardian) finds it on overlays...
    assert.deepEqual(await run(ov.findVmsOnOverlays), [RAW]);

    // ...and merges; the guest has written more meanwhile, and this worker dies too, mid-merge.
    await guestWrite(RAW, 'vdb', 0x71, 64, 128);
    await killChildWhen('mergeOverlays', [RAW, 32], (beat) => {
      const b = beat as { target?: string; cur?: number; end?: number };
      return b.target === 'vdb' && (b.cur ?? 0) > 0 && b.cur! < b.end!;
    });
    assert.equal(qemuPid(RAW), pid, 'the guest kept running');
    const job = parseBlockJob(await hypervisor.virsh('blockjob', '--domain', RAW, 'vdb', '--raw'));
    assert.equal(job?.type, 'Active Block Commit', 'the merge was under way when the worker died');

    await run(ov.mergeOverlays, RAW); // the run after that picks the job up and pivots
    await run(hv.discardPartials, RAW, stamp);
    assert.equal(qemuPid(RAW), pid);
    await assertBackOnOriginals(RAW, disks);
    assert.ok(holds(dataDisk, 0x3c, 40, 8) && holds(dataDisk, 0x71, 64, 128));
    assert.deepEqual(await run(ov.findVmsOnOverlays), []);
  });

  it('libvirtd restarted during the merge: the guest runs on and a retry finishes the merge', async () => {
    const stamp = nextStamp();
    const { disks } = await freeze(RAW, stamp, false);
    const pid = qemuPid(RAW);
    await guestWrite(RAW, 'vdb', 0x2e, 200, 128);
    const first = run(ov.mergeOverlays, RAW, 32).then(
      () => 'finished',
      (err: Error) => err.message,
    );
    for (;;) {
      const job = parseBlockJob(await hypervisor.virsh('blockjob', '--domain', RAW, 'vdb', '--raw'));
      if (job && job.cur > 0) break;
      await sleep(100);
    }
    await hypervisor.stopDaemon();
    await hypervisor.startDaemon();
    const outcome = await first;
    assert.equal(qemuPid(RAW), pid, 'the guest kept running through the restart');
    if (outcome !== 'finished') await run(ov.mergeOverlays, RAW); // what Temporal's retry does
    assert.equal(qemuPid(RAW), pid);
    await assertBackOnOriginals(RAW, disks);
    assert.ok(holds(dataDisk, 0x2e, 200, 128));

    // Every write of the tests above is in the original after a clean shutdown.
    await guests[RAW]!.waitReady(boots[RAW]!, 180_000);
    await stopCleanly(RAW);
    assert.ok(holds(dataDisk, 0x5a, 8, 16) && holds(dataDisk, 0x3c, 40, 8) && holds(dataDisk, 0x71, 64, 128));
    assert.equal(markers(root, guests[RAW]!.disk, 'raw')[1], 'cbguest clean-shutdown');
  });
});
