/**
 * The fault matrix of `imaging: overlay` through the whole weekly workflow, on a real libvirtd + QEMU with a
 * tiny guest that writes to its disks throughout: the worker killed (SIGKILL) during the copy and during the
 * live merge, libvirtd restarted during the merge, the run terminated during the copy and during the merge.
 * Each time the guest runs on (same QEMU process), the run itself, the guardian or the next run merges the
 * overlays back, and every write the guest made is in its disks.
 */
import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Client, WorkflowHandle } from '@temporalio/client';
import {
  blockOverlayDir,
  folderOf,
  OVERLAY_MARK,
  overlayDisksFromXml,
  parseBlockJob,
} from '../../adapters/hypervisor/overlays';
import type { Config } from '../../config/schema';
import type { GuardianSummary } from '../../domain/guardian';
import type { WeeklySummary } from '../../domain/weekly-summary';
import type { SandboxHypervisor } from '../../scripts/sandbox/libvirt-host';
import { stopProcess } from '../../scripts/sandbox/processes';
import { guestWrite, holds, markers, qemuPid, tickOf } from '../helpers/guest-disk';
import type { TestSmtpServer } from '../helpers/smtp';
import { quietWorkerLogs } from '../helpers/temporal';
import { partialsUnder, startVmHarness, type VmHarness } from '../helpers/vm-harness';
import { spawnWorker, writeConfigFile } from '../helpers/worker-process';

quietWorkerLogs();

const VM = 'cbtest-overlay-faults';
/** A guest with a block-device data disk (a loop device over a sparse file). */
const BLOCK_VM = 'cbtest-overlay-block';
const BLOCK_MiB = 256;
const MiB = 1024 * 1024;
/** The data disk: random data, large enough that its copy and its merge can be caught under way. */
const DATA_MiB = 384;
/** Where the guest's big writes go (beyond the writer's 1 MiB blocks, which stay below). */
const BIG_WRITE_AT_MiB = 256;
const BIG_WRITE_MiB = 96;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('imaging: overlay, faults in the weekly workflow on real libvirt', { concurrency: false }, () => {
  let vmHost: VmHarness;
  let root: string;
  let hypervisor: SandboxHypervisor;
  let smtp: TestSmtpServer;
  let config: Config;
  let client: Client;
  let dataDir: string;
  let dataDisk: string;
  let loopDevice = '';
  let vdaDisk: string;
  let configFile: string;
  let guardianRuns = 0;
  /** What the data disk must hold, offset (MiB) -> byte and when it was written: every write that was done. */
  const written = new Map<number, { byte: number; at: number; sure: boolean; states?: string }>();
  /** The steps of the last run, to tell when a lost write was made. */
  let lastSteps = '';
  let writes = 0;
  /** Why writes were not counted (for a failure message). */
  const refused = new Set<string>();

  const stateNow = () => hypervisor.state(VM).catch((err: Error) => err.message.slice(0, 80));
  /**
   * The guest writes 1 MiB blocks to its data disk all along (through its own block device, as the guest
   * would). qemu-io tells virsh nothing, not even a failure (that goes to QEMU's log: "write failed: No
   * medium found" once QEMU is terminating after the guest powered off): a write is sure only where the same
   * QEMU ran the guest before and after it; the others are checked too, and only reported.
   */
  const startWriter = () => {
    let stopped = false;
    const loop = (async () => {
      while (!stopped) {
        const n = writes++;
        const offset = n % BIG_WRITE_AT_MiB;
        const byte = (n % 250) + 1;
        const at = Date.now();
        written.delete(offset);
        try {
          const pid = qemuPid(VM);
          const before = await stateNow();
          if (pid) {
            await guestWrite(hypervisor, VM, 'vdb', byte, offset, 1);
            const [pidAfter, after] = [qemuPid(VM), await stateNow()];
            const sure = /^running/.test(before) && pidAfter === pid && /^running/.test(after);
            const states = `${before} (${pid}) -> ${after} (${pidAfter}), ${Date.now() - at} ms`;
            written.set(offset, { byte, at, sure, ...(!sure && { states }) });
          }
        } catch (err) {
          refused.add(
            String((err as Error).message)
              .split('\n')[0]!
              .slice(0, 200),
          );
        }
        await sleep(250);
      }
    })();
    return async () => {
      stopped = true;
      await loop;
    };
  };
  /** Every counted write is in `file` (a raw data disk). */
  const assertWritesIn = (file: string) => {
    const data = readFileSync(file);
    const missing = [...written].filter(([offset, { byte }]) =>
      data.subarray(offset * MiB, (offset + 1) * MiB).some((b) => b !== byte),
    );
    const entryText = ([offset, { byte, at, states }]: (typeof missing)[number]) =>
      `${offset} MiB: ${byte} at ${new Date(at).toISOString()}${states ? ` ${states}` : ''}`;
    const unsure = [...written.values()].filter((w) => !w.sure).length;
    const unsureMissing = missing.filter(([, w]) => !w.sure).map(entryText);
    console.log(
      `writes made while the guest started or stopped: ${unsure}, not in the disk: ${unsureMissing.length} ${unsureMissing.join(', ')}${unsureMissing.length ? `; last run: ${lastSteps}` : ''}`,
    );
    const lost = missing.filter(([, w]) => w.sure).map(entryText);
    assert.deepEqual(
      lost,
      [],
      `${lost.length} of ${written.size - unsure} writes missing; last run: ${lastSteps}; uncounted: ${[...refused].join(' | ')}`,
    );
  };
  const overlayFiles = () =>
    [dataDir, join(root, 'libvirt')].flatMap((dir) => readdirSync(dir).filter((f) => f.includes(OVERLAY_MARK)));
  const assertBackOnOriginals = async () => {
    for (const xml of [
      await hypervisor.virsh('dumpxml', '--domain', VM),
      await hypervisor.virsh('dumpxml', '--inactive', '--domain', VM),
    ]) {
      assert.deepEqual(overlayDisksFromXml(xml), []);
      assert.ok(xml.includes(`file='${dataDisk}'`) && xml.includes(`file='${vdaDisk}'`), xml);
    }
    assert.deepEqual(overlayFiles(), []);
  };
  const onOverlays = async () => overlayDisksFromXml(await hypervisor.virsh('dumpxml', '--domain', VM)).length;
  /** Waits until the data disk's image is being written (its partial file grows). */
  const copyUnderWay = async () => {
    const deadline = Date.now() + 120_000;
    while (Date.now() < deadline) {
      const partial = partialsUnder(vmHost.imageArea).find((p) => p.includes('vdb'));
      if (partial && statSync(join(vmHost.imageArea, partial), { throwIfNoEntry: false })?.size) {
        return join(vmHost.imageArea, partial);
      }
      await sleep(5);
    }
    throw new Error('the data disk was never copied');
  };
  /** Waits until the data disk's live merge has committed some but not all of its overlay. */
  const mergeUnderWay = async () => {
    const deadline = Date.now() + 120_000;
    while (Date.now() < deadline) {
      const job = await hypervisor
        .virsh('blockjob', '--domain', VM, 'vdb', '--raw')
        .then(parseBlockJob, () => undefined);
      if (job?.type === 'Active Block Commit' && job.cur > 0 && job.cur < job.end) return job;
      await sleep(50);
    }
    throw new Error('no merge of the data disk under way');
  };
  /** Runs the weekly workflow; once the VM runs on its overlays the guest adds a big write to be merged. */
  const startRun = async (taskQueue?: string, workflowId?: string) => {
    const { handle, result } = await vmHost.runWeekly([VM], taskQueue, workflowId);
    await vmHost.waitForStep(handle, VM, 'imaging-frozen');
    const pid = qemuPid(VM);
    assert.ok(pid, 'the guest runs while its disks are imaged');
    assert.equal(await onOverlays(), 2, 'on its overlays while imaged');
    const byte = 0xb0 + (writes % 16);
    await guestWrite(hypervisor, VM, 'vdb', byte, BIG_WRITE_AT_MiB, BIG_WRITE_MiB);
    for (let i = 0; i < BIG_WRITE_MiB; i++) written.set(BIG_WRITE_AT_MiB + i, { byte, at: Date.now(), sure: true });
    return { handle, result, pid };
  };
  const killWorker = async (worker: ChildProcess) => {
    const exited = new Promise((resolve) => worker.once('exit', resolve));
    worker.kill('SIGKILL');
    await exited;
  };
  const assertBackedUp = (summary: WeeklySummary) => {
    const [vm] = summary.vms;
    lastSteps = vm!.steps.map((s) => `${s.step} ${s.startedAt} +${s.ms}`).join(', ');
    assert.equal(vm!.status, 'backed-up', JSON.stringify(vm, null, 2));
    assert.equal(vm!.runningAtEnd, true);
    assert.equal(markers(root, vm!.images[0]!.path, 'qcow2')[1], 'cbguest clean-shutdown', 'the clean state');
    return vm!;
  };
  const shutDown = async (vm: string) => {
    await hypervisor.virsh('shutdown', '--domain', vm);
    const deadline = Date.now() + 60_000;
    while (!/shut off/.test(await hypervisor.state(vm))) {
      assert.ok(Date.now() < deadline, `${vm} shut down`);
      await sleep(200);
    }
  };
  const runGuardian = async () =>
    (await client.workflow.execute('vmGuardian', {
      taskQueue: config.temporal.taskQueue,
      workflowId: `overlay-faults-guardian-${++guardianRuns}`,
    })) as GuardianSummary;
  /** After each fault: the guest ran on in the same QEMU, it is back on its disks, nothing of ours is left. */
  const assertWhole = async (pid: number) => {
    assert.equal(qemuPid(VM), pid, 'the guest never stopped');
    assert.match(await hypervisor.state(VM), /running/);
    await assertBackOnOriginals();
    assert.deepEqual(partialsUnder(vmHost.imageArea), []);
    assertWritesIn(dataDisk); // the running guest's writes are in the original file once merged
  };

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'cluster-backup-overlay-faults-data-'));
    dataDisk = join(dataDir, 'data.raw');
    execFileSync('sh', ['-c', `head -c ${DATA_MiB * MiB} /dev/urandom > "$1"`, 'sh', dataDisk]);
    const blockBacking = join(dataDir, 'block-device.img');
    execFileSync('sh', ['-c', `head -c ${64 * MiB} /dev/urandom > "$1"`, 'sh', blockBacking]);
    truncateSync(blockBacking, BLOCK_MiB * MiB);
    loopDevice = execFileSync('losetup', ['--find', '--show', blockBacking], { encoding: 'utf8' }).trim();
    vmHost = await startVmHarness({
      name: 'overlay-faults',
      address: '127.0.0.12',
      guests: [
        {
          name: VM,
          extraDisks: [
            `<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='${dataDisk}'/><target dev='vdb' bus='virtio'/></disk>`,
          ],
        },
        {
          name: BLOCK_VM,
          extraDisks: [
            `<disk type='block' device='disk'><driver name='qemu' type='raw'/><source dev='${loopDevice}'/><target dev='vdb' bus='virtio'/></disk>`,
          ],
        },
      ],
      hypervisor: {
        vms: [VM],
        imaging: 'overlay',
        overlayReserveBytes: 256 * MiB,
        spaceMarginBytes: MiB,
        keepImages: 1,
        overlayMergeTimeoutSeconds: 120,
        // Slow enough that the data disk's merge (about 100 MiB) can be caught under way.
        overlayMergeBandwidthMiBps: 64,
      },
    });
    ({ root, hypervisor, smtp, config, client } = vmHost);
    vdaDisk = vmHost.guests[VM]!.disk;
    configFile = writeConfigFile(root, {
      ...config,
      temporal: { ...config.temporal, taskQueue: 'overlay-faults-kill' },
    });
  });

  after(async () => {
    await vmHost?.stop();
    if (loopDevice) execFileSync('losetup', ['-d', loopDevice]);
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  /**
   * A run on a worker process killed (SIGKILL) at `fault`'s moment; `killed` checks the state it left; a new
   * worker then takes the run over, which must end backed up with the guest never stopped.
   */
  const killWorkerDuring = async (fault: () => Promise<unknown>, killed: (pid: number) => Promise<void>) => {
    const stopWriter = startWriter();
    const first = spawnWorker(configFile, join(root, `worker-${writes}-1.log`));
    let second: ChildProcess | undefined;
    try {
      const { result, pid } = await startRun('overlay-faults-kill');
      await fault();
      await killWorker(first);
      await killed(pid);
      second = spawnWorker(configFile, join(root, `worker-${writes}-2.log`));
      assertBackedUp(await result());
      await stopWriter();
      await assertWhole(pid);
    } finally {
      await stopWriter();
      await stopProcess(first);
      if (second) await stopProcess(second);
    }
    await vmHost.rebooted(VM);
  };

  it('kill -9 of the worker during the copy: the guest runs on, the run goes on with a new worker and merges', async () => {
    let partial = '';
    await killWorkerDuring(
      async () => (partial = await copyUnderWay()),
      async (pid) => {
        assert.ok(!existsSync(partial.replace(/\.partial$/, '')), 'killed before the copy finished');
        await sleep(1000);
        assert.equal(qemuPid(VM), pid, 'the guest runs on without its worker');
        assert.equal(await onOverlays(), 2);
      },
    );
  });

  it('kill -9 of the worker during the live merge: the block job goes on, the run picks it up and pivots', async () => {
    await killWorkerDuring(mergeUnderWay, async (pid) => {
      const job = parseBlockJob(await hypervisor.virsh('blockjob', '--domain', VM, 'vdb', '--raw'));
      assert.equal(job?.type, 'Active Block Commit', 'the job outlives the worker');
      assert.equal(qemuPid(VM), pid);
    });
  });

  it('libvirtd stopped and started again during the live merge: the guest runs on, the run finishes the merge', async () => {
    const stopWriter = startWriter();
    try {
      const { result, pid } = await startRun();
      await mergeUnderWay();
      await hypervisor.stopDaemon();
      try {
        await sleep(3000);
        assert.equal(qemuPid(VM), pid, 'the guest runs on without libvirtd');
      } finally {
        await hypervisor.startDaemon();
      }
      assertBackedUp(await result());
      await stopWriter();
      await assertWhole(pid);
    } finally {
      await stopWriter();
    }
    await vmHost.rebooted(VM);
  });

  it('the run terminated during the copy: the guardian merges the overlays and says so by mail; the next run backs up', async () => {
    const stopWriter = startWriter();
    try {
      const { handle, pid } = await startRun();
      await copyUnderWay();
      const [hostRun] = await vmHost.terminateRun(handle, 'operator pressed terminate during the copy');
      await sleep(1000);
      assert.equal(qemuPid(VM), pid);
      assert.equal(await onOverlays(), 2, 'left on its overlays');

      const guardian = await runGuardian();
      assert.deepEqual(guardian.overlaysMerged, [VM]);
      await stopWriter();
      assert.equal(qemuPid(VM), pid);
      await assertBackOnOriginals();
      assertWritesIn(dataDisk);
      const alerts = smtp.messages.filter((m) => /overlays a run left merged back/.test(String(m.subject)));
      assert.equal(alerts.length, 1, smtp.messages.map((m) => m.subject).join(' | '));
      assert.match(String(alerts[0]!.subject), new RegExp(VM));
      assert.match(String(alerts[0]!.text), new RegExp(`run ${hostRun}`));

      const next = await (await vmHost.runWeekly([VM])).result();
      assertBackedUp(next);
      assert.equal(next.vms[0]!.reason, undefined, 'nothing left for the next run to merge');
      assert.deepEqual(partialsUnder(vmHost.imageArea), []);
    } finally {
      await stopWriter();
    }
    await vmHost.rebooted(VM);
  });

  it('worker killed and run terminated during the merge: the next run`s preflight picks the merge up', async () => {
    const stopWriter = startWriter();
    const worker = spawnWorker(configFile, join(root, 'worker-left.log'));
    let handle: WorkflowHandle | undefined;
    try {
      const run = await startRun('overlay-faults-kill');
      handle = run.handle;
      await mergeUnderWay();
      await killWorker(worker);
      await vmHost.terminateRun(handle, 'worker gone, operator gave up on the run');
      assert.equal(qemuPid(VM), run.pid);

      // On the in-process worker, whose guardian ran at its start: the weekly run's own preflight merges.
      const next = await (await vmHost.runWeekly([VM])).result();
      const vm = assertBackedUp(next);
      assert.match(vm.reason ?? '', /overlays an earlier run left merged \(.*vdb/);
      await stopWriter();
      await assertBackOnOriginals();
      assertWritesIn(dataDisk);
    } finally {
      await stopWriter();
      await stopProcess(worker);
    }
    await vmHost.rebooted(VM);
  });

  it('a block-device disk: its overlay in the image area, committed back into the device with the guest`s writes', async () => {
    const { handle, result } = await vmHost.runWeekly([BLOCK_VM]);
    await vmHost.waitForStep(handle, BLOCK_VM, 'imaging-frozen');
    const pid = qemuPid(BLOCK_VM);
    const onThem = overlayDisksFromXml(await hypervisor.virsh('dumpxml', '--domain', BLOCK_VM));
    const vdb = onThem.find((d) => d.target === 'vdb');
    assert.equal(vdb?.base, loopDevice, 'the device is frozen under an overlay');
    assert.equal(folderOf(vdb!.overlay), blockOverlayDir(vmHost.imageArea), 'its overlay is in the image area');
    await guestWrite(hypervisor, BLOCK_VM, 'vdb', 0x6d, 200, 32); // while the device is imaged
    const [vm] = (await result()).vms;
    assert.equal(vm!.status, 'backed-up', JSON.stringify(vm, null, 2));
    assert.deepEqual(
      vm!.images.map((i) => [i.disk, i.format, i.virtualSize]),
      [
        ['vda', 'qcow2', 16 * MiB],
        ['vdb', 'raw', BLOCK_MiB * MiB],
      ],
    );
    const image = vm!.images[1]!.path;
    assert.ok(!holds(image, 0x6d, 200, 32), 'the image is the frozen device, without the later write');
    const written = readFileSync(join(dataDir, 'block-device.img')).subarray(0, 64 * MiB);
    assert.ok(
      readFileSync(image)
        .subarray(0, 64 * MiB)
        .equals(written),
      'the image holds the device`s data',
    );
    assert.equal(qemuPid(BLOCK_VM), pid, 'the guest never stopped');
    for (const xml of [
      await hypervisor.virsh('dumpxml', '--domain', BLOCK_VM),
      await hypervisor.virsh('dumpxml', '--inactive', '--domain', BLOCK_VM),
    ]) {
      assert.deepEqual(overlayDisksFromXml(xml), []);
      assert.match(xml, new RegExp(`<disk type='block' device='disk'>[^]*?<source dev='${loopDevice}'`));
    }
    assert.deepEqual(readdirSync(blockOverlayDir(vmHost.imageArea)), [], 'no overlay file left');
    assert.ok(holds(loopDevice, 0x6d, 200, 32), 'the write made during the copy is in the device');
  });

  it('a block-device VM shut down on its overlays after its run was terminated: the guardian merges it offline', async () => {
    await vmHost.rebooted(BLOCK_VM); // from the run above
    const { handle } = await vmHost.runWeekly([BLOCK_VM]);
    await vmHost.waitForStep(handle, BLOCK_VM, 'imaging-frozen');
    await guestWrite(hypervisor, BLOCK_VM, 'vdb', 0x4e, 100, 16); // into its overlay
    await vmHost.terminateRun(handle, 'operator pressed terminate');
    await vmHost.rebooted(BLOCK_VM);
    await shutDown(BLOCK_VM); // someone shuts the guest down before the guardian runs: its overlays stay
    assert.equal(overlayDisksFromXml(await hypervisor.virsh('dumpxml', '--inactive', '--domain', BLOCK_VM)).length, 2);

    const guardian = await runGuardian();
    assert.deepEqual(guardian.overlaysMerged, [BLOCK_VM]);
    const xml = await hypervisor.virsh('dumpxml', '--inactive', '--domain', BLOCK_VM);
    assert.deepEqual(overlayDisksFromXml(xml), []);
    assert.match(xml, new RegExp(`<disk type='block' device='disk'>[^]*?<source dev='${loopDevice}'`));
    assert.deepEqual(readdirSync(blockOverlayDir(vmHost.imageArea)), [], 'no overlay file left');
    assert.ok(holds(loopDevice, 0x4e, 100, 16), 'the write into the overlay was committed into the device');
    assert.match(await hypervisor.state(BLOCK_VM), /shut off/, 'a VM found off stays off');
  });

  it('after all of it, a clean shutdown: every write the guest made is in its disks', async () => {
    const before = markers(root, vdaDisk, 'qcow2');
    assert.ok(tickOf(before[2]) >= 1, `the guest ticks into its disk: ${before[2]}`);
    await shutDown(VM);
    const after = markers(root, vdaDisk, 'qcow2');
    assert.equal(after[1], 'cbguest clean-shutdown');
    assert.equal(after[0], before[0], 'the boot it ran since the last run');
    assert.ok(tickOf(after[2]) >= tickOf(before[2]), `${after[2]} after ${before[2]}`);
    assert.ok(written.size > 100, `${written.size} writes checked`);
    assertWritesIn(dataDisk);
    assert.deepEqual(overlayFiles(), []);
  });
});
