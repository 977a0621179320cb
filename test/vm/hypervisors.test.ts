import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Config } from '../../config/schema';
import { parseConfig } from '../../config/load';
import { isoWeekLabel, type WeeklySummary } from '../../domain/weekly-summary';
import { checkHypervisorOf, restoreVmRequest, startRestoreVm } from '../../scripts/commands/restore';
import { startHypervisor, type SandboxGuest, type SandboxHypervisor } from '../../scripts/sandbox/libvirt-host';
import { startSshHost, type SandboxSshHost } from '../../scripts/sandbox/sshd-host';
import type { Activities } from '../../activities';
import { createWorker } from '../../worker/create-worker';
import { inProcessWorker, quietWorkerLogs } from '../helpers/temporal';
import { startVmHarness, type VmHarness } from '../helpers/vm-harness';

quietWorkerLogs();

const A_VM = 'cbtest-on-a';
const A_VM2 = 'cbtest-on-a2';
const B_VM = 'cbtest-on-b';
const B_VM2 = 'cbtest-on-b2';
/** The later runs take one VM per host (named with its host, so an unreachable one is still reported). */
const ONE_EACH = [`hv-a/${A_VM}`, `hv-b/${B_VM}`];
const QUEUE = 'hypervisors-two';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Two hypervisors, as a cluster has them: the harness's libvirtd behind one sshd, a second libvirtd (its own
 * mount namespace, its own definitions) behind another, and a worker whose config names both.
 */
describe('two hypervisors in one weekly run, on real libvirt', { concurrency: false }, () => {
  let vmHost: VmHarness;
  let second: SandboxHypervisor;
  let secondSsh: SandboxSshHost;
  let secondGuest: SandboxGuest;
  let secondGuest2: SandboxGuest;
  let secondBoots = 1;
  let worker: { stop: () => Promise<void> } | undefined;
  let twoHosts: Config;
  const week = () => isoWeekLabel(new Date().toISOString().slice(0, 10));

  const run = async (vms: string[] = []): Promise<{ id: string; summary: WeeklySummary }> => {
    const { handle, result } = await vmHost.runWeekly(vms, QUEUE);
    return { id: handle.workflowId, summary: await result() };
  };
  const qemuPid = (guest: SandboxGuest): string =>
    readFileSync(join(second.dir, 'private', 'run', 'qemu', `${guest.name}.pid`), 'utf8').trim();

  before(async () => {
    vmHost = await startVmHarness({
      name: 'hypervisors',
      address: '127.0.0.21',
      store: true,
      guests: [{ name: A_VM }, { name: A_VM2 }],
      hypervisor: { vms: [A_VM, A_VM2], imaging: 'offline', shutdownTimeoutSeconds: 30, spaceMarginBytes: 1 << 20 },
    });
    second = await startHypervisor(join(vmHost.root, 'libvirt-b', 'libvirt'), { isolated: true });
    secondSsh = await startSshHost({ dir: join(vmHost.root, 'hypervisor-b-ssh'), address: '127.0.0.22' });
    secondGuest = await second.defineGuest({ name: B_VM });
    secondGuest2 = await second.defineGuest({ name: B_VM2 });
    await second.virsh('start', '--domain', B_VM);
    await second.virsh('start', '--domain', B_VM2);
    await secondGuest.waitReady(1, 180_000);
    await secondGuest2.waitReady(1, 180_000);

    const [a] = vmHost.config.hypervisors;
    twoHosts = parseConfig(
      {
        ...vmHost.config,
        temporal: { ...vmHost.config.temporal, taskQueue: QUEUE },
        hosts: { ...vmHost.config.hosts, 'hypervisor-b': secondSsh.config },
        hypervisors: [
          { ...a!, name: 'hv-a' },
          {
            ...a!,
            name: 'hv-b',
            host: 'hypervisor-b',
            uri: second.uri,
            imageArea: join(vmHost.root, 'images-b'),
            vms: [B_VM, B_VM2],
          },
        ],
      },
      'two hypervisors test',
      vmHost.root,
    );
    worker = await inProcessWorker(twoHosts);
  });

  after(async () => {
    await worker?.stop();
    await secondSsh?.stop();
    await second?.stop();
    await vmHost?.stop();
  });

  it('backs up each hypervisor`s VMs in a child run of its own, the hosts at once and each one VM at a time, and sends one report grouped by host', async () => {
    assert.notEqual(second.uri, vmHost.hypervisor.uri, 'two libvirtds');
    const { id, summary } = await run();
    assert.equal(summary.ok, true, JSON.stringify(summary, null, 2));
    // Each VM's cycle from its first step's start to its last step's end.
    const span = (vm: string): [number, number] => {
      const steps = summary.vms.find((v) => v.vm === vm)!.steps;
      const starts = steps.map((s) => Date.parse(s.startedAt));
      return [Math.min(...starts), Math.max(...steps.map((s, i) => starts[i]! + s.ms))];
    };
    const overlap = ([a0, a1]: [number, number], [b0, b1]: [number, number]) => Math.min(a1, b1) - Math.max(a0, b0);
    const t0 = Date.parse(summary.startedAt);
    for (const vm of [A_VM, A_VM2, B_VM, B_VM2]) {
      const [from, to] = span(vm);
      console.log(`cycle ${vm}: ${((from - t0) / 1000).toFixed(1)} s to ${((to - t0) / 1000).toFixed(1)} s`);
    }
    assert.ok(overlap(span(A_VM), span(A_VM2)) <= 0, 'concurrency 1 on hv-a: one cycle after the other');
    assert.ok(overlap(span(B_VM), span(B_VM2)) <= 0, 'concurrency 1 on hv-b: one cycle after the other');
    const across = Math.max(...[A_VM, A_VM2].flatMap((a) => [B_VM, B_VM2].map((b) => overlap(span(a), span(b)))));
    console.log(`the hosts' cycles overlap for ${(across / 1000).toFixed(1)} s`);
    assert.ok(across > 0, 'the two hosts are backed up at the same time');
    assert.deepEqual(
      summary.hosts!.map((h) => [h.hypervisor, h.workflowId.startsWith(`vms-${week()}-${h.hypervisor}-`)]),
      [
        ['hv-a', true],
        ['hv-b', true],
      ],
    );
    assert.deepEqual(
      summary.vms.map((v) => [v.hypervisor, v.vm, v.status, v.runningAtEnd]),
      [
        ['hv-a', A_VM, 'backed-up', true],
        ['hv-a', A_VM2, 'backed-up', true],
        ['hv-b', B_VM, 'backed-up', true],
        ['hv-b', B_VM2, 'backed-up', true],
      ],
    );
    const b = summary.vms[2]!;
    assert.ok(b.images[0]!.path.startsWith(join(vmHost.root, 'images-b')), 'imaged in hv-b`s own image area');
    assert.equal(b.stored[0]!.sha256, b.images[0]!.sha256);
    assert.match(await second.state(B_VM), /running/);
    assert.match(await vmHost.hypervisor.state(A_VM), /running/);

    const mail = vmHost.reportOf(id);
    assert.equal(mail.subject, `[cluster-backup] OK weekly ${week()} (4/4 VMs)`);
    const text = String(mail.text);
    assert.ok(text.indexOf(`hv-a/${A_VM}`) >= 0 && text.indexOf(`hv-a/${A_VM}`) < text.indexOf(`hv-b/${B_VM}`), text);
    assert.match(text, new RegExp(`hypervisor hv-b: 2 VM\\(s\\), .* \\(${summary.hosts![1]!.workflowId}\\)`));

    // The host run carries its hypervisor as a search attribute (visibility lags a moment behind).
    const listed = async () => {
      const ids: string[] = [];
      for await (const w of vmHost.client.workflow.list({ query: `BackupHypervisor = "hv-b"` })) ids.push(w.workflowId);
      return ids;
    };
    let ids = await listed();
    for (let i = 0; i < 20 && !ids.includes(summary.hosts![1]!.workflowId); i++) {
      await sleep(500);
      ids = await listed();
    }
    assert.ok(ids.includes(summary.hosts![1]!.workflowId), ids.join(' '));
    assert.ok(!ids.includes(summary.hosts![0]!.workflowId), 'hv-a`s host run is not listed for hv-b');

    await vmHost.rebooted(A_VM, A_VM2);
    await secondGuest.waitReady(++secondBoots, 180_000);
    await secondGuest2.waitReady(2, 180_000);
  });

  it('restores a VM of the second hypervisor there (restore vm --hypervisor), and refuses one the config does not name', async () => {
    const copy = 'cbtest-on-b-copy';
    const request = restoreVmRequest(B_VM, { as: copy, hypervisor: 'hv-b' });
    const restored = await (await startRestoreVm(vmHost.client, twoHosts, request)).result();
    assert.equal(restored.ok, true, JSON.stringify(restored, null, 2));
    assert.match(await second.virsh('list', '--all', '--name'), new RegExp(`^${copy}$`, 'm'));
    assert.doesNotMatch(await vmHost.hypervisor.virsh('list', '--all', '--name'), new RegExp(copy));
    for (const { path } of restored.pushed) assert.ok(path.startsWith(join(vmHost.root, 'images-b')), path);
    await second.virsh('undefine', '--domain', copy);

    assert.throws(
      () => checkHypervisorOf(restoreVmRequest(B_VM, { as: copy, hypervisor: 'hv-z' }), twoHosts),
      /no hypervisor "hv-z" in config \(have: hv-a, hv-b\)/,
    );
  });

  it('a hypervisor gone (its sshd stopped): the other is backed up, its VM left running and reported; the next run backs up both', async () => {
    const pid = qemuPid(secondGuest);
    await secondSsh.stop();
    const { id, summary } = await run(ONE_EACH);
    const [a, b] = summary.vms;
    assert.deepEqual([a!.hypervisor, a!.status, a!.runningAtEnd], ['hv-a', 'backed-up', true]);
    assert.deepEqual([b!.hypervisor, b!.vm, b!.status], ['hv-b', B_VM, 'skipped']);
    assert.match(b!.reason ?? '', /^hypervisor unreachable, untouched: /);
    assert.ok(!b!.steps.some((s) => s.step === 'stopping'));
    assert.ok(summary.hosts![1]!.unreachable, JSON.stringify(summary.hosts));
    assert.equal(summary.ok, false);
    assert.equal(qemuPid(secondGuest), pid, 'the VM on the unreachable host never stopped');
    const mail = vmHost.reportOf(id);
    assert.doesNotMatch(String(mail.subject), /\bOK\b/);
    assert.match(String(mail.text), /hypervisor hv-b: unreachable, its VMs untouched/);
    await vmHost.rebooted(A_VM);

    secondSsh = await startSshHost({
      dir: secondSsh.dir,
      address: '127.0.0.22',
      port: secondSsh.config.port,
    });
    const next = await run(ONE_EACH);
    assert.equal(next.summary.ok, true, JSON.stringify(next.summary, null, 2));
    assert.deepEqual(
      next.summary.vms.map((v) => [v.hypervisor, v.status]),
      [
        ['hv-a', 'backed-up'],
        ['hv-b', 'backed-up'],
      ],
    );
    await vmHost.rebooted(A_VM);
    await secondGuest.waitReady(++secondBoots, 180_000);
  });

  it('libvirtd stopped for 60 s as each step begins (stopping, overlays, imaging, merging, verifying): the backup completes and the VMs run', async () => {
    // Each step's activity (the merge's second call: the first is the preflight's merge of left overlays) finds
    // its VM's libvirtd stopped; it comes back 60 s later. The five outages are shared by the two hosts (one
    // at a time on each), so the hosts wait theirs out side by side.
    const outageAt: Record<string, [step: string, call: number, vm: string]> = {
      requestShutdown: ['stopping', 1, A_VM],
      createOverlays: ['overlays', 1, B_VM],
      createFrozenImage: ['imaging-frozen', 1, A_VM],
      mergeOverlays: ['merging', 2, B_VM],
      verifyImage: ['verifying', 1, A_VM],
    };
    const daemons: Record<string, SandboxHypervisor> = { [A_VM]: vmHost.hypervisor, [B_VM]: second };
    const calls = new Map<string, number>();
    const back: Record<string, Promise<unknown>> = { [A_VM]: Promise.resolve(), [B_VM]: Promise.resolve() };
    const config = parseConfig(
      {
        ...twoHosts,
        temporal: { ...twoHosts.temporal, taskQueue: 'hypervisors-outages' },
        hypervisors: twoHosts.hypervisors.map((h) => ({
          ...h,
          imaging: 'overlay',
          overlayReserveBytes: 64 << 20,
          keepImages: 1,
        })),
      },
      'outages test',
      vmHost.root,
    );
    const outages = await createWorker(config, {
      wrapActivities: (activities: Activities) => {
        const wrapped = { ...activities } as Record<string, (...args: unknown[]) => Promise<unknown>>;
        for (const [name, [, call, vm]] of Object.entries(outageAt)) {
          const original = wrapped[name]!;
          wrapped[name] = async (...args: unknown[]) => {
            if (args[0] !== vm) return original(...args);
            calls.set(name, (calls.get(name) ?? 0) + 1);
            if (calls.get(name) === call) {
              await back[vm]; // one outage at a time per host
              await daemons[vm]!.stopDaemon();
              back[vm] = sleep(60_000).then(() => daemons[vm]!.startDaemon());
            }
            return original(...args);
          };
        }
        return wrapped as unknown as Activities;
      },
    });
    const running = outages.run();
    try {
      const { handle, result } = await vmHost.runWeekly(ONE_EACH, 'hypervisors-outages');
      const summary = await result();
      for (const [vmName, host] of [
        [A_VM, 'hv-a'],
        [B_VM, 'hv-b'],
      ] as const) {
        const vm = summary.vms.find((v) => v.vm === vmName);
        assert.ok(vm, `${vmName} in ${JSON.stringify(summary.vms.map((v) => v.vm))}`);
        assert.equal(vm.status, 'backed-up', JSON.stringify(vm, null, 2));
        assert.equal(vm.runningAtEnd, true);
        const steps = vm.steps.map((s) => `${s.step} ${Math.round(s.ms / 1000)} s`).join(', ');
        console.log(`${handle.workflowId} ${host}/${vmName}: ${steps}`);
        for (const [step, , onVm] of Object.values(outageAt)) {
          if (onVm !== vmName) continue;
          const took = vm.steps.find((s) => s.step === step)?.ms ?? 0;
          assert.ok(took > 55_000, `${step} waited out its outage: ${steps}`);
        }
      }
      assert.match(await vmHost.hypervisor.state(A_VM), /running/);
      assert.match(await second.state(B_VM), /running/);
    } finally {
      await Promise.all(Object.values(back));
      outages.shutdown();
      await running;
      await outages.connection.close();
    }
    await vmHost.rebooted(A_VM);
    await secondGuest.waitReady(++secondBoots, 180_000);
  });
});
