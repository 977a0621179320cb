/**
 * Never leave a VM down: faults from the hypervisor, operators and deploys, on a real libvirtd + QEMU with
 * tiny guests and a real dev server. A block-device disk (a loop device over a sparse file) makes imaging
 * slow enough to freeze it (SIGSTOP) and act while the VM is down.
 */
import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Client } from '@temporalio/client';
import type { Config } from '../../config/schema';
import type { GuardianSummary } from '../../domain/guardian';
import { describeHeldDown, heldDownVms } from '../../scripts/commands/held-down';
import type { SandboxHypervisor } from '../../scripts/sandbox/libvirt-host';
import { freePort, stopProcess } from '../../scripts/sandbox/processes';
import { abortUpdate } from '../../workflows/definitions';
import { eventually } from '../helpers/eventually';
import { metricValue } from '../helpers/prometheus';
import type { TestSmtpServer } from '../helpers/smtp';
import { quietWorkerLogs } from '../helpers/temporal';
import { partialsUnder, startVmHarness, type VmHarness } from '../helpers/vm-harness';
import { spawnWorker, writeConfigFile } from '../helpers/worker-process';

quietWorkerLogs();

const BIG = 'cbtest-block-disk';
const SMALL = 'cbtest-small';
const PAUSED = 'cbtest-paused';
const ODD_DISK = 'cbtest-dir-disk';
/** The block device's size: enough that reading it takes a few seconds (it is a hole: costs no disk). */
const BLOCK_BYTES = 1024 ** 3;

describe('never leave a VM down: faults on a real libvirt + QEMU hypervisor', { concurrency: false }, () => {
  let vmHost: VmHarness;
  let root: string;
  let hypervisor: SandboxHypervisor;
  let smtp: TestSmtpServer;
  let config: Config;
  let client: Client;
  let rebooted: VmHarness['rebooted'];
  let runWeekly: VmHarness['runWeekly'];
  let waitForStep: VmHarness['waitForStep'];
  let blockDir: string;
  let loopDevice: string;
  let runs = 0;
  const imageArea = () => vmHost.imageArea;
  const alertsFor = (vm: string) =>
    smtp.messages.filter((m) => String(m.subject).includes('left down') && String(m.subject).includes(vm));

  /** PIDs of the imaging copies (qemu-img convert) of this test's disks (other checkouts may run their own). */
  const copiesRunning = (): number[] => {
    let pids: number[] = [];
    try {
      pids = execFileSync('pgrep', ['-x', 'qemu-img'], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
    } catch {
      return []; // pgrep exits 1 when nothing matches
    }
    return pids.filter((pid) => {
      try {
        const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        return cmdline.includes('convert') && (cmdline.includes(root) || cmdline.includes(loopDevice));
      } catch {
        return false;
      }
    });
  };
  /**
   * Waits for the imaging copy of BIG's block device (its last and largest disk) to start and freezes it (as a
   * hung storage would). Not the small first disk: the next disk's imaging asks libvirt first, which a test
   * that stops libvirtd during the frozen copy must not depend on.
   */
  const freezeCopy = async (): Promise<number> => {
    const deadline = Date.now() + 120_000;
    while (Date.now() < deadline) {
      const [pid] = copiesRunning().filter((p) => readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(loopDevice));
      if (pid) {
        process.kill(pid, 'SIGSTOP');
        return pid;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error('no imaging copy started');
  };
  const runGuardian = async () =>
    (await client.workflow.execute('vmGuardian', {
      taskQueue: config.temporal.taskQueue,
      workflowId: `guardian-test-${++runs}`,
    })) as GuardianSummary;

  before(async () => {
    // A block device (a loop device over a sparse file: it costs no disk) makes imaging take a few seconds.
    blockDir = mkdtempSync(join(tmpdir(), 'cluster-backup-faults-block-'));
    const backing = join(blockDir, 'block-device.img');
    writeFileSync(backing, '');
    truncateSync(backing, BLOCK_BYTES);
    loopDevice = execFileSync('losetup', ['--find', '--show', backing], { encoding: 'utf8' }).trim();
    const dirDisk = join(blockDir, 'dir-disk');
    mkdirSync(dirDisk);
    vmHost = await startVmHarness({
      name: 'vm-faults',
      address: '127.0.0.6',
      guests: [
        {
          name: BIG,
          extraDisks: [
            `<disk type='block' device='disk'><driver name='qemu' type='raw'/><source dev='${loopDevice}'/><target dev='vdb' bus='virtio'/></disk>`,
          ],
        },
        { name: SMALL },
        { name: PAUSED },
        {
          name: ODD_DISK,
          extraDisks: [
            `<disk type='dir' device='disk'><driver name='qemu' type='fat'/><source dir='${dirDisk}'/><target dev='vdb' bus='virtio'/><readonly/></disk>`,
          ],
        },
      ],
      hypervisor: {
        vms: [BIG],
        // The faults of a VM down while it is imaged; overlay-faults.test.ts has those of `imaging: overlay`.
        imaging: 'offline',
        shutdownTimeoutSeconds: 30,
        // Long enough to outlast a libvirtd restart while it shuts down.
        perVm: { [SMALL]: { shutdownTimeoutSeconds: 90 } },
        spaceMarginBytes: 1 << 20,
        keepImages: 1,
      },
    });
    ({ root, hypervisor, smtp, config, client, rebooted, runWeekly, waitForStep } = vmHost);
  });

  after(async () => {
    for (const pid of copiesRunning()) process.kill(pid, 'SIGKILL');
    await vmHost?.stop();
    if (loopDevice) execFileSync('losetup', ['-d', loopDevice]);
    rmSync(blockDir, { recursive: true, force: true });
  });

  it('images a VM with a qcow2 disk and a block-device disk, every disk', async () => {
    const summary = await (await runWeekly([BIG])).result();
    const [vm] = summary.vms;
    assert.equal(vm!.status, 'backed-up', JSON.stringify(vm, null, 2));
    assert.deepEqual(
      vm!.images.map((i) => [i.disk, i.format, i.virtualSize]),
      [
        ['vda', 'qcow2', 16 << 20],
        ['vdb', 'raw', BLOCK_BYTES],
      ],
    );
    assert.ok(vm!.images[1]!.allocatedBytes! < 1 << 20, 'the zeros of the block device are holes in the image');
    const manifest = JSON.parse(readFileSync(join(imageArea(), BIG, summary.stamp, 'manifest.json'), 'utf8'));
    assert.equal(manifest.version, 2);
    assert.match(manifest.domainXml, new RegExp(loopDevice));
    assert.match(await hypervisor.state(BIG), /running/);
    await rebooted(BIG);
  });

  it('skips a VM with a disk it cannot image before stopping it, and names the disk', async () => {
    const summary = await (await runWeekly([ODD_DISK])).result();
    const [vm] = summary.vms;
    assert.equal(vm!.status, 'skipped');
    assert.match(vm!.reason!, /disk vdb is of type dir/);
    assert.ok(!vm!.steps.some((s) => s.step === 'stopping'));
    assert.match(await hypervisor.state(ODD_DISK), /running/);
  });

  it('leaves a paused VM paused', async () => {
    await hypervisor.virsh('suspend', '--domain', PAUSED);
    try {
      const summary = await (await runWeekly([PAUSED])).result();
      assert.equal(summary.vms[0]!.status, 'skipped');
      assert.match(summary.vms[0]!.reason!, /paused.*left as found/);
      assert.match(await hypervisor.state(PAUSED), /paused/);
    } finally {
      await hypervisor.virsh('resume', '--domain', PAUSED);
    }
  });

  it('cycles each VM once when the schedule and `run vms` start the same week, and for a duplicate --vm', async () => {
    const [scheduled, manual] = await Promise.all([
      runWeekly([SMALL, SMALL], config.temporal.taskQueue, `vms-scheduled-${Date.now()}`),
      runWeekly([SMALL]),
    ]);
    const results = await Promise.all([scheduled.result(), manual.result()]);
    const said = JSON.stringify(results, null, 2);
    // Each run names the VM once (the duplicate folded); the VM's lock lets one of them cycle it.
    const entries = results.map((r) => r.vms.filter((v) => v.vm === SMALL));
    assert.deepEqual(
      entries.map((e) => e.length),
      [1, 1],
      said,
    );
    const cycled = entries.flat().filter((v) => v.status === 'backed-up');
    assert.equal(cycled.length, 1, said);
    const left = entries.flat().find((v) => v.status !== 'backed-up')!;
    assert.equal(left.status, 'skipped', said);
    assert.match(left.reason ?? '', /^left to vms-.*: that run holds this VM/);
    assert.ok(!left.steps.some((s) => s.step === 'stopping'), 'the run it was left to stopped it, not this one');
    const hostRuns = results.flatMap((r) => r.hosts ?? []).map((h) => h.workflowId);
    assert.equal(new Set(hostRuns).size, 2, `one host run each, named apart: ${hostRuns.join(' ')}`);
    await rebooted(SMALL);
  });

  it('backs up another VM while a run`s copy hangs, then answers an abort with the VM running and no copy left', async () => {
    const { handle, result } = await runWeekly([BIG]);
    const frozen = await freezeCopy();
    // `run vms --vm Y` while X's run is stuck: no run blocks another VM.
    const other = await (await runWeekly([SMALL])).result();
    assert.equal(other.vms[0]!.status, 'backed-up', JSON.stringify(other, null, 2));
    assert.equal((await handle.describe()).status.name, 'RUNNING', 'the stuck run is still open');
    await rebooted(SMALL);
    const answer = await handle.executeUpdate(abortUpdate, { args: ['storage maintenance'] });
    assert.deepEqual(answer.running, [BIG]);
    assert.match(await hypervisor.state(BIG), /running/);
    assert.deepEqual(copiesRunning(), [], `the frozen copy ${frozen} was ended`);
    assert.deepEqual(partialsUnder(imageArea()), []);
    assert.equal((await result()).vms[0]!.status, 'aborted');
    await rebooted(BIG);
  });

  it('stops a copy that makes no progress and starts the VM within its budget', async () => {
    const queue = 'vm-faults-stall';
    const file = writeConfigFile(root, {
      ...config,
      temporal: { ...config.temporal, taskQueue: queue },
      hypervisors: [{ ...config.hypervisors[0]!, stallSeconds: 5, perVm: { [BIG]: { maxDowntimeSeconds: 90 } } }],
    });
    const log = join(root, 'worker-stall.log');
    const strict: ChildProcess = spawnWorker(file, log);
    try {
      const { result } = await runWeekly([BIG], queue);
      await freezeCopy().catch((err: Error) => {
        throw new Error(`${err.message}; the worker said: ${readFileSync(log, 'utf8').slice(-3000)}`);
      });
      const frozenAt = Date.now();
      const summary = await result();
      const [vm] = summary.vms;
      assert.equal(vm!.status, 'failed');
      assert.equal(vm!.failedStep, 'imaging');
      assert.match(vm!.reason!, /no progress for 5 s; stopped/);
      assert.equal(vm!.runningAtEnd, true);
      assert.ok(vm!.downtimeMs! < (90 + 5) * 1000, `down ${vm!.downtimeMs} ms`);
      assert.ok(Date.now() - frozenAt < 60_000);
      assert.deepEqual(copiesRunning(), []);
      assert.deepEqual(partialsUnder(imageArea()), [], 'no partial image counted');
      assert.match(await hypervisor.state(BIG), /running/);
    } finally {
      await stopProcess(strict);
    }
    await rebooted(BIG);
  });

  it('starts the VM after libvirtd was down for 30 s during imaging and restart; the run completes', async () => {
    const { handle, result } = await runWeekly([BIG]);
    const frozen = await freezeCopy();
    await hypervisor.stopDaemon();
    try {
      const downAt = Date.now();
      process.kill(frozen, 'SIGCONT'); // the copy finishes while libvirtd is away; the start must wait for it
      // Down for 30 s at least, and for 15 s of the start (a loaded machine may take longer over the copy).
      await waitForStep(handle, BIG, 'starting');
      await new Promise((r) => setTimeout(r, Math.max(15_000, 30_000 - (Date.now() - downAt))));
    } finally {
      await hypervisor.startDaemon(); // a failure here must not leave the later tests without libvirtd
    }
    const summary = await result();
    assert.equal(summary.vms[0]!.status, 'backed-up', JSON.stringify(summary.vms[0], null, 2));
    const starting = summary.vms[0]!.steps.find((s) => s.step === 'starting')!;
    assert.ok(starting.ms > 10_000, 'the start waited for libvirtd');
    assert.match(await hypervisor.state(BIG), /running/);
    await rebooted(BIG);
  });

  it('waits out libvirtd being down for 30 s while the VM shuts down, and backs it up', async () => {
    const { handle, result } = await runWeekly([SMALL]);
    await waitForStep(handle, SMALL, 'stopping');
    await hypervisor.stopDaemon();
    await new Promise((r) => setTimeout(r, 30_000)).finally(() => hypervisor.startDaemon());
    const summary = await result();
    assert.equal(summary.vms[0]!.status, 'backed-up', JSON.stringify(summary.vms[0], null, 2));
    assert.ok(summary.vms[0]!.steps.find((s) => s.step === 'stopping')!.ms > 20_000, 'the stop waited for libvirtd');
    assert.match(await hypervisor.state(SMALL), /running/);
    await rebooted(SMALL);
  });

  it('serves the weekly run`s backup metrics from the worker process (result, image size, downtime)', async () => {
    const queue = 'vm-faults-metrics';
    const port = await freePort();
    const file = writeConfigFile(root, {
      ...config,
      temporal: { ...config.temporal, taskQueue: queue },
      worker: { ...config.worker, metricsBindAddress: `127.0.0.1:${port}` },
    });
    const served = spawnWorker(file, join(root, 'worker-metrics.log'));
    try {
      const summary = await (await runWeekly([SMALL], queue)).result();
      const [vm] = summary.vms;
      assert.equal(vm!.status, 'backed-up');
      const text = await eventually(
        async () => {
          const body = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text().catch(() => '');
          return metricValue(body, 'cluster_backup_last_run_result', { backup: 'weekly', result: 'ok' }) === 1
            ? body
            : undefined;
        },
        'the weekly run in the metrics',
        60_000,
      );
      const imageBytes = vm!.images.reduce((sum, i) => sum + i.bytes, 0);
      assert.equal(metricValue(text, 'cluster_backup_vm_image_bytes', { vm: SMALL }), imageBytes);
      const downtime = metricValue(text, 'cluster_backup_vm_downtime_seconds', { vm: SMALL })!;
      assert.ok(Math.abs(downtime - vm!.downtimeMs! / 1000) < 0.01, `downtime ${downtime} s`);
    } finally {
      await stopProcess(served);
    }
    await rebooted(SMALL);
  });

  for (const step of ['stopping', 'imaging'] as const) {
    it(`terminate while ${step}: held down meanwhile, the guardian starts the VM and alerts, the next run backs it up as running`, async () => {
      const vm = step === 'stopping' ? SMALL : BIG;
      const { handle } = await runWeekly([vm]);
      await waitForStep(handle, vm, step);
      if (step === 'imaging') await freezeCopy();
      else {
        // The shutdown request has gone out once its held-down record is written (a loaded machine takes a while).
        const deadline = Date.now() + 60_000;
        while ((await heldDownVms(config)).length === 0 && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 100));
        }
        await new Promise((r) => setTimeout(r, 300));
      }
      // The VM's cycle lives in the host run: terminated with the weekly run, nothing of it runs on.
      const [hostRun] = await vmHost.terminateRun(handle, 'operator pressed terminate');

      const held = await heldDownVms(config);
      assert.deepEqual(
        held.map((r) => [r.vm, r.owner.workflowId]),
        [[vm, hostRun]],
      );
      assert.match(describeHeldDown(held[0]!), new RegExp(`held down for .* by ${hostRun} `));

      const guardian = await runGuardian();
      assert.deepEqual(
        guardian.putBack.map((p) => [p.vm, p.running]),
        [[vm, true]],
      );
      assert.match(await hypervisor.state(vm), /running/);
      assert.deepEqual(await heldDownVms(config), []);
      assert.deepEqual(copiesRunning(), []);
      const alerts = alertsFor(vm);
      assert.equal(alerts.length, 1);
      assert.match(String(alerts[0]!.text), new RegExp(`held by run ${hostRun}`));
      await rebooted(vm);

      const next = await (await runWeekly([vm])).result();
      assert.equal(next.vms[0]!.status, 'backed-up', next.vms[0]!.reason);
      assert.equal(next.vms[0]!.wasRunning, true, 'backed up as a running VM, not "as found"');
      assert.match(await hypervisor.state(vm), /running/);
      await rebooted(vm);
    });
  }
});
