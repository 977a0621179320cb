/**
 * Never leave a VM down: faults from the hypervisor, operators and deploys, on a real libvirtd + QEMU with
 * tiny guests and a real dev server. A block-device disk (a loop device over a sparse file) makes imaging
 * slow enough to freeze it (SIGSTOP) and act while the VM is down.
 */
import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { parseConfig } from '../../config/load';
import type { Config } from '../../config/schema';
import type { GuardianSummary } from '../../domain/guardian';
import type { WeeklySummary } from '../../domain/weekly-summary';
import { describeHeldDown, heldDownVms } from '../../scripts/commands/held-down';
import { startWeekly } from '../../scripts/commands/run-vms';
import { connectClient } from '../../scripts/commands/temporal-client';
import { startHypervisor, type SandboxGuest, type SandboxHypervisor } from '../../scripts/sandbox/libvirt-host';
import { stopProcess } from '../../scripts/sandbox/processes';
import { startSshHost, type SandboxSshHost } from '../../scripts/sandbox/sshd-host';
import type { DevServer } from '../../scripts/sandbox/temporal-dev-server';
import { abortUpdate, progressQuery } from '../../workflows/definitions';
import { startSmtpServer, type TestSmtpServer } from '../helpers/smtp';
import { inProcessWorker, quietWorkerLogs, testDevServer } from '../helpers/temporal';
import { spawnWorker, writeConfigFile } from '../helpers/worker-process';

quietWorkerLogs();

const BIG = 'cbtest-block-disk';
const SMALL = 'cbtest-small';
const PAUSED = 'cbtest-paused';
const ODD_DISK = 'cbtest-dir-disk';
/** The block device's size: enough that reading it takes a few seconds (it is a hole: costs no disk). */
const BLOCK_BYTES = 3 * 1024 ** 3;

describe('never leave a VM down: faults on a real libvirt + QEMU hypervisor', { concurrency: false }, () => {
  let root: string;
  let hypervisor: SandboxHypervisor;
  let sshHost: SandboxSshHost;
  let server: DevServer;
  let smtp: TestSmtpServer;
  let config: Config;
  let worker: { stop: () => Promise<void> };
  let client: Client;
  let closeClient: () => Promise<void>;
  let loopDevice: string;
  const guests: Record<string, SandboxGuest> = {};
  const boots: Record<string, number> = {};
  let runs = 0;

  const imageArea = () => join(root, 'images');
  const rebooted = async (...names: string[]) => {
    for (const name of names) {
      boots[name] = (boots[name] ?? 0) + 1;
      await guests[name]!.waitReady(boots[name]!);
    }
  };
  const runWeekly = async (
    vms: string[],
    taskQueue = config.temporal.taskQueue,
    workflowId = `vms-fault-${++runs}`,
  ) => {
    const handle = await startWeekly(
      client,
      { ...config, temporal: { ...config.temporal, taskQueue } },
      vms,
      workflowId,
    );
    return { handle, result: () => handle.result() as Promise<WeeklySummary> };
  };
  const alertsFor = (vm: string) =>
    smtp.messages.filter((m) => String(m.subject).includes('left down') && String(m.subject).includes(vm));

  /** PIDs of qemu-img processes working on this test's files (other checkouts may run their own). */
  const copiesRunning = (): number[] => {
    let pids: number[] = [];
    try {
      pids = execFileSync('pgrep', ['-x', 'qemu-img'], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
    } catch {
      return []; // pgrep exits 1 when nothing matches
    }
    return pids.filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(root);
      } catch {
        return false;
      }
    });
  };
  /** Waits for the imaging copy to start and freezes it (as a hung storage would). */
  const freezeCopy = async (): Promise<number> => {
    const deadline = Date.now() + 120_000;
    while (Date.now() < deadline) {
      const [pid] = copiesRunning();
      if (pid) {
        process.kill(pid, 'SIGSTOP');
        return pid;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error('no imaging copy started');
  };
  const waitForStep = async (handle: WorkflowHandle, vm: string, step: string) => {
    const deadline = Date.now() + 120_000;
    while (Date.now() < deadline) {
      const progress = await handle.query(progressQuery).catch(() => undefined);
      if (progress?.vms.some((v) => v.vm === vm && v.step === step)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`${vm} never reached ${step}`);
  };
  const runGuardian = async () =>
    (await client.workflow.execute('vmGuardian', {
      taskQueue: config.temporal.taskQueue,
      workflowId: `guardian-test-${++runs}`,
    })) as GuardianSummary;
  const partialsUnder = (dir: string) =>
    existsSync(dir)
      ? readdirSync(dir, { recursive: true })
          .map(String)
          .filter((n) => n.endsWith('.partial'))
      : [];

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'cluster-backup-faults-'));
    [hypervisor, sshHost, server, smtp] = await Promise.all([
      startHypervisor(join(root, 'libvirt')),
      startSshHost({ dir: join(root, 'hypervisor-ssh'), address: '127.0.0.6' }),
      testDevServer(),
      startSmtpServer(mkdtempSync(join(tmpdir(), 'cluster-backup-faults-smtp-'))),
    ]);
    const backing = join(root, 'block-device.img');
    writeFileSync(backing, '');
    truncateSync(backing, BLOCK_BYTES);
    loopDevice = execFileSync('losetup', ['--find', '--show', backing], { encoding: 'utf8' }).trim();
    const dirDisk = join(root, 'dir-disk');
    mkdirSync(dirDisk);
    guests[BIG] = await hypervisor.defineGuest({
      name: BIG,
      extraDisks: [
        `<disk type='block' device='disk'><driver name='qemu' type='raw'/><source dev='${loopDevice}'/><target dev='vdb' bus='virtio'/></disk>`,
      ],
    });
    guests[SMALL] = await hypervisor.defineGuest({ name: SMALL });
    guests[PAUSED] = await hypervisor.defineGuest({ name: PAUSED });
    guests[ODD_DISK] = await hypervisor.defineGuest({
      name: ODD_DISK,
      extraDisks: [
        `<disk type='dir' device='disk'><driver name='qemu' type='fat'/><source dir='${dirDisk}'/><target dev='vdb' bus='virtio'/><readonly/></disk>`,
      ],
    });
    for (const name of [BIG, SMALL, PAUSED, ODD_DISK]) await hypervisor.virsh('start', '--domain', name);
    await rebooted(BIG, SMALL, PAUSED, ODD_DISK);
    config = parseConfig(
      {
        temporal: { address: server.address, taskQueue: 'vm-faults' },
        hosts: { hypervisor: sshHost.config },
        hypervisor: {
          host: 'hypervisor',
          uri: hypervisor.uri,
          imageArea: imageArea(),
          vms: [BIG],
          shutdownTimeoutSeconds: 30,
          spaceMarginBytes: 1 << 20,
          keepImages: 1,
        },
        mail: {
          recipients: { weekly: ['ops@cluster.test'] },
          smtp: { host: '127.0.0.1', port: smtp.port, security: 'starttls', caFile: smtp.certFile },
        },
        transfer: { heartbeatTimeoutSeconds: 4 },
      },
      'vm faults test',
      root,
    );
    worker = await inProcessWorker(config);
    ({ client, close: closeClient } = await connectClient(config));
  });

  after(async () => {
    for (const pid of copiesRunning()) process.kill(pid, 'SIGKILL');
    await closeClient?.();
    await worker?.stop();
    await Promise.all([hypervisor?.stop(), sshHost?.stop(), server?.stop(), smtp?.stop()]);
    if (loopDevice) execFileSync('losetup', ['-d', loopDevice]);
    rmSync(root, { recursive: true, force: true });
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
    const cycles = results.flatMap((r) => r.vms).filter((v) => v.vm === SMALL);
    assert.equal(cycles.length, 1, JSON.stringify(results, null, 2));
    assert.equal(cycles[0]!.status, 'backed-up');
    assert.equal(results.filter((r) => r.alreadyRunning).length, 1);
    await rebooted(SMALL);
  });

  it('answers an abort during a hung copy with the VM running, and leaves no copy on the hypervisor', async () => {
    const { handle, result } = await runWeekly([BIG]);
    const frozen = await freezeCopy();
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
      hypervisor: { ...config.hypervisor!, stallSeconds: 5, perVm: { [BIG]: { maxDowntimeSeconds: 90 } } },
    });
    const strict: ChildProcess = spawnWorker(file, join(root, 'worker-stall.log'));
    try {
      const { result } = await runWeekly([BIG], queue);
      await freezeCopy();
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
    const { result } = await runWeekly([BIG]);
    const frozen = await freezeCopy();
    await hypervisor.stopDaemon();
    process.kill(frozen, 'SIGCONT'); // the copy finishes while libvirtd is away; the start must wait for it
    await new Promise((r) => setTimeout(r, 30_000));
    await hypervisor.startDaemon();
    const summary = await result();
    assert.equal(summary.vms[0]!.status, 'backed-up', JSON.stringify(summary.vms[0], null, 2));
    const starting = summary.vms[0]!.steps.find((s) => s.step === 'starting')!;
    assert.ok(starting.ms > 10_000, 'the start waited for libvirtd');
    assert.match(await hypervisor.state(BIG), /running/);
    await rebooted(BIG);
  });

  for (const step of ['stopping', 'imaging'] as const) {
    it(`terminate while ${step}: held down meanwhile, the guardian starts the VM and alerts, the next run backs it up as running`, async () => {
      const vm = step === 'stopping' ? SMALL : BIG;
      const { handle } = await runWeekly([vm]);
      await waitForStep(handle, vm, step);
      if (step === 'imaging') await freezeCopy();
      else await new Promise((r) => setTimeout(r, 300)); // the shutdown request has gone out
      await handle.terminate('operator pressed terminate');

      const held = await heldDownVms(config);
      assert.deepEqual(
        held.map((r) => [r.vm, r.owner.workflowId]),
        [[vm, handle.workflowId]],
      );
      assert.match(describeHeldDown(held[0]!), /held down for .* by vms-fault-/);

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
      assert.match(String(alerts[0]!.text), new RegExp(`held by run ${handle.workflowId}`));
      await rebooted(vm);

      const next = await (await runWeekly([vm])).result();
      assert.equal(next.vms[0]!.status, 'backed-up');
      assert.equal(next.vms[0]!.wasRunning, true, 'backed up as a running VM, not "as found"');
      assert.match(await hypervisor.state(vm), /running/);
      await rebooted(vm);
    });
  }
});
