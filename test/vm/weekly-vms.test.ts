import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import type { Config } from '../../config/schema';
import { isoWeekLabel } from '../../domain/weekly-summary';
import type { SandboxHypervisor } from '../../scripts/sandbox/libvirt-host';
import { startChild, stopProcess } from '../../scripts/sandbox/processes';
import { PROJECT_ROOT } from '../../scripts/sandbox/paths';
import { abortUpdate } from '../../workflows/definitions';
import { quietWorkerLogs } from '../helpers/temporal';
import { partialsUnder, startVmHarness, type VmHarness } from '../helpers/vm-harness';
import { spawnWorker, writeConfigFile } from '../helpers/worker-process';

quietWorkerLogs();

const ALPHA = 'cbtest-alpha';
const BETA = "cbtest-b'eta gamma"; // a space and a quote: must reach virsh intact
const IGNORES = 'cbtest-ignores-acpi';
const FORCED = 'cbtest-ignores-acpi-forced';
const OFFLINE = 'cbtest-offline';
const INJECTION = "x'; touch /tmp/cluster-backup-pwned; '";

/** Sector 0 and 1 of a guest disk image: the boot counter and the running/clean-shutdown marker. */
function markers(root: string, image: string): [string, string] {
  const raw = join(root, `markers-${Date.now()}.raw`);
  execFileSync('qemu-img', ['convert', '-U', '-O', 'raw', image, raw]);
  const head = readFileSync(raw).subarray(0, 1024);
  rmSync(raw);
  return [head.subarray(0, 512).toString().trim(), head.subarray(512, 1024).toString().trim()];
}

describe('weekly VM backup on a real libvirt + QEMU hypervisor', { concurrency: false }, () => {
  let vmHost: VmHarness;
  let root: string;
  let hypervisor: SandboxHypervisor;
  let config: Config;
  let reportOf: VmHarness['reportOf'];
  let rebooted: VmHarness['rebooted'];
  let runWeekly: VmHarness['runWeekly'];
  let waitForStep: VmHarness['waitForStep'];
  const week = () => isoWeekLabel(new Date().toISOString().slice(0, 10));
  const imageArea = () => vmHost.imageArea;

  before(async () => {
    vmHost = await startVmHarness({
      name: 'vm',
      address: '127.0.0.5',
      store: true,
      guests: [
        { name: ALPHA },
        { name: BETA },
        { name: IGNORES, acpi: false },
        { name: FORCED, acpi: false },
        { name: OFFLINE, running: false },
      ],
      hypervisor: {
        vms: [ALPHA, BETA],
        // The cycle with the VM down while imaged (kill -9 around createImage...); overlay.test.ts has overlay's.
        imaging: 'offline',
        shutdownTimeoutSeconds: 30,
        perVm: {
          [IGNORES]: { shutdownTimeoutSeconds: 3 },
          [FORCED]: { shutdownTimeoutSeconds: 3, forceOff: true },
        },
        spaceMarginBytes: 1 << 20,
        keepImages: 2,
      },
    });
    ({ root, hypervisor, config, reportOf, rebooted, runWeekly, waitForStep } = vmHost);
  });

  after(async () => {
    await vmHost?.stop();
  });

  it('images two running guests after a clean shutdown, verifies them and leaves both running', async () => {
    const run = await runWeekly([ALPHA, BETA]);
    const summary = await run.result();
    assert.equal(summary.ok, true, JSON.stringify(summary, null, 2));
    const mail = reportOf(run.handle.workflowId);
    assert.equal(mail.subject, `[cluster-backup] OK weekly ${week()} (2/2 VMs)`);
    assert.match(String(mail.text), /cbtest-alpha\s+backed-up\s+running/);
    for (const vm of summary.vms) {
      assert.equal(vm.status, 'backed-up');
      assert.equal(vm.wasRunning, true);
      assert.equal(vm.runningAtEnd, true);
      assert.ok((vm.downtimeMs ?? 0) > 0);
      assert.equal(vm.images.length, 1);
      const image = vm.images[0]!;
      assert.equal(image.sha256, createHash('sha256').update(readFileSync(image.path)).digest('hex'));
      assert.ok(existsSync(join(image.path, '..', 'manifest.json')));
      assert.equal(vm.stored.length, 1);
      assert.equal(vm.stored[0]!.sha256, image.sha256);
      assert.equal(createHash('sha256').update(readFileSync(vm.stored[0]!.path)).digest('hex'), image.sha256);
      assert.ok(existsSync(join(vm.stored[0]!.path, '..', 'manifest.json')));
      const [boot, state] = markers(root, image.path);
      assert.equal(boot, 'cbguest boot 1');
      assert.equal(state, 'cbguest clean-shutdown', 'the image was taken after a clean shutdown');
      assert.match(await hypervisor.state(vm.vm), /running/);
    }
    assert.deepEqual(
      summary.vms.map((v) => v.vm),
      [ALPHA, BETA],
    );
    await rebooted(ALPHA, BETA);
  });

  it('leaves a VM that was off off, reports a missing one, and injects nothing through a hostile name', async () => {
    const summary = await (await runWeekly([OFFLINE, 'no-such-vm', INJECTION])).result();
    const [offline, missing, hostile] = summary.vms;
    assert.equal(offline!.status, 'backed-up');
    assert.equal(offline!.wasRunning, false);
    assert.match(await hypervisor.state(OFFLINE), /shut off/);
    assert.equal(missing!.status, 'skipped');
    assert.match(missing!.reason ?? '', /no such VM/);
    assert.equal(hostile!.status, 'skipped');
    assert.equal(existsSync('/tmp/cluster-backup-pwned'), false);
    assert.equal(summary.ok, false);
  });

  it('shuts nothing down when the store cannot hold the week`s images', async () => {
    const queue = 'vm-store-full';
    const file = writeConfigFile(root, {
      ...config,
      temporal: { ...config.temporal, taskQueue: queue },
      store: { ...config.store!, spaceMarginBytes: 2 ** 52 }, // 4 PiB
    });
    const small = spawnWorker(file, join(root, 'worker-store-full.log'));
    try {
      const summary = await (await runWeekly([ALPHA, BETA], queue)).result();
      for (const vm of summary.vms) {
        assert.equal(vm.status, 'skipped');
        assert.match(vm.reason ?? '', /not enough space in the store/);
        assert.ok(!vm.steps.some((s) => s.step === 'stopping'), 'no VM was asked to stop');
      }
      assert.match(await hypervisor.state(ALPHA), /running/);
    } finally {
      await stopProcess(small);
    }
  });

  it('leaves a guest that ignores ACPI running after the timeout, and forces it off only where allowed', async () => {
    const summary = await (await runWeekly([IGNORES, FORCED])).result();
    const [polite, forced] = summary.vms;
    assert.equal(polite!.status, 'skipped');
    assert.match(polite!.reason ?? '', /did not shut down within 3 s/);
    assert.equal(polite!.runningAtEnd, true);
    assert.equal(polite!.images.length, 0);
    assert.equal(forced!.status, 'backed-up');
    assert.match(forced!.reason ?? '', /forced off/);
    assert.equal(markers(root, forced!.images[0]!.path)[1], 'cbguest running', 'forced off: no clean-shutdown marker');
    assert.match(await hypervisor.state(IGNORES), /running/);
    assert.match(await hypervisor.state(FORCED), /running/);
    await rebooted(FORCED);
  });

  it('restarts a VM whose imaging fails, reports the failure and still backs up the other', async () => {
    mkdirSync(imageArea(), { recursive: true });
    writeFileSync(join(imageArea(), 'alpha-blocker'), '');
    rmSync(join(imageArea(), ALPHA), { recursive: true, force: true });
    writeFileSync(join(imageArea(), ALPHA), 'a file where the VM folder should be');
    try {
      const run = await runWeekly([ALPHA, BETA]);
      const summary = await run.result();
      const [alpha, beta] = summary.vms;
      assert.equal(
        reportOf(run.handle.workflowId).subject,
        `[cluster-backup] FAILED weekly ${week()}: ${ALPHA} imaging failed`,
      );
      assert.equal(alpha!.status, 'failed');
      assert.equal(alpha!.failedStep, 'imaging');
      assert.match(alpha!.reason ?? '', /Not a directory/);
      assert.equal(alpha!.runningAtEnd, true);
      assert.equal(beta!.status, 'backed-up');
      assert.match(await hypervisor.state(ALPHA), /running/);
      assert.deepEqual(partialsUnder(imageArea()), []);
    } finally {
      rmSync(join(imageArea(), ALPHA), { force: true });
      rmSync(join(imageArea(), 'alpha-blocker'), { force: true });
    }
    await rebooted(ALPHA, BETA);
  });

  it('restarts the VM when the run is cancelled mid-cycle', async () => {
    const { handle, result } = await runWeekly([ALPHA, BETA]);
    await waitForStep(handle, ALPHA, 'stopping');
    await handle.cancel();
    await assert.rejects(result(), (err: unknown) => err instanceof WorkflowFailedError);
    assert.equal(reportOf(handle.workflowId).subject, `[cluster-backup] CANCELLED weekly ${week()}`);
    assert.match(await hypervisor.state(ALPHA), /running/);
    assert.match(await hypervisor.state(BETA), /running/);
    await rebooted(ALPHA);
  });

  it('answers an abort update once the VMs are back, and reports the run as aborted', async () => {
    const { handle, result } = await runWeekly([ALPHA, BETA]);
    await waitForStep(handle, ALPHA, 'stopping');
    const answer = await handle.executeUpdate(abortUpdate, { args: ['maintenance window over'] });
    assert.equal(answer.acknowledged, true);
    assert.deepEqual(answer.running, [ALPHA]);
    const summary = await result();
    assert.equal(summary.aborted, 'maintenance window over');
    assert.equal(summary.ok, false);
    assert.deepEqual(
      summary.vms.map((v) => [v.vm, v.status]),
      [
        [ALPHA, 'aborted'],
        [BETA, 'aborted'],
      ],
    );
    assert.match(await hypervisor.state(ALPHA), /running/);
    assert.match(await hypervisor.state(BETA), /running/);
    await rebooted(ALPHA);
  });

  for (const [when, activity] of [
    ['after', 'requestShutdown'],
    ['after', 'createImage'],
    ['after', 'verifyImage'],
    ['before', 'ensureRunning'],
  ] as const) {
    it(`recovers from kill -9 of the worker ${when} ${activity}: both VMs running, no partial counted`, async () => {
      const queue = `vm-kill-${activity}`;
      const file = writeConfigFile(root, { ...config, temporal: { ...config.temporal, taskQueue: queue } });
      const faulty = startChild(
        process.execPath,
        [join(PROJECT_ROOT, 'dist', 'test', 'helpers', 'faulty-worker.js'), file, when, activity],
        {
          stdio: 'inherit',
        },
      );
      const exited = new Promise<NodeJS.Signals | null>((resolve) =>
        faulty.once('exit', (_code, signal) => resolve(signal)),
      );
      const { result } = await runWeekly([ALPHA, BETA], queue);
      assert.equal(await exited, 'SIGKILL');
      const healthy: ChildProcess = spawnWorker(file, join(root, `worker-${activity}.log`));
      try {
        const summary = await result();
        assert.deepEqual(
          summary.vms.map((v) => [v.vm, v.status, v.runningAtEnd]),
          [
            [ALPHA, 'backed-up', true],
            [BETA, 'backed-up', true],
          ],
          JSON.stringify(summary, null, 2),
        );
        assert.match(await hypervisor.state(ALPHA), /running/);
        assert.match(await hypervisor.state(BETA), /running/);
        assert.deepEqual(partialsUnder(imageArea()), []);
      } finally {
        await stopProcess(healthy);
      }
      await rebooted(ALPHA, BETA);
    });
  }
});
