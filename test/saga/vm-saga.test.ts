/**
 * Every exit path of the VM saga and the weekly run, on Temporal's time-skipping test server with stub
 * activities (no root, libvirt or QEMU): which compensations ran, and the VM's final state. Each path in both
 * modes: `imaging: overlay` (the default, as in the config) and `offline` (the variant).
 * The real-libvirt suite (test/vm) is the end-to-end proof; this one is the logic, in seconds.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import type { RemoteActivities, StoreActivities } from '../../activities';
import type { ReportRequest } from '../../domain/report';
import type { VmPolicy, VmResult, VmStep, WeeklySettings, WeeklySummary } from '../../domain/weekly-summary';
import type { GuardianSummary } from '../../domain/guardian';
import { weeklyReport } from '../../domain/weekly-report';
import { TEMPORAL_TEST_SERVER } from '../../scripts/sandbox/paths';
import type { remoteActivities } from '../../workflows/activity-proxies';
import { abortUpdate } from '../../workflows/definitions';
import { WORKFLOW_BUNDLE } from '../../worker/create-worker';
import { quietWorkerLogs } from '../helpers/temporal';
import { captureHistory } from '../helpers/history-capture';
import { StubHypervisor, type Fault } from '../helpers/stub-hypervisor';

// Routing is a type: a store activity is not on the main queue's proxy, so calling it there cannot compile.
function neverCalled(mainQueue: ReturnType<typeof remoteActivities>) {
  // @ts-expect-error pullImage runs only on the store task queue
  return mainQueue.pullImage;
}
void neverCalled;

const TASK_QUEUE = 'saga';
/** The suite's default: imaging overlay (the config's default); offline is the variant. */
const OVERLAY: VmPolicy = { shutdownTimeoutSeconds: 30, forceOff: false, maxDowntimeSeconds: 3600, imaging: 'overlay' };
const OFFLINE: VmPolicy = { ...OVERLAY, imaging: 'offline' };
const SETTINGS: WeeklySettings = {
  vms: ['db'],
  concurrency: 1,
  keepImages: 2,
  store: true,
  storeTaskQueue: 'saga-store',
  heartbeatTimeoutSeconds: 2,
  policy: {},
  defaultPolicy: OVERLAY,
  stallSeconds: 60,
};

describe('VM saga: every exit path, on the time-skipping test server', () => {
  let env: TestWorkflowEnvironment;
  let stub: StubHypervisor;
  let reports: ReportRequest[] = [];
  let workers: Worker[];
  let running: Promise<unknown>;
  let seq = 0;

  /** Activities that always act on the current test's stub. */
  function delegating<T extends object>(pick: (s: StubHypervisor) => T): T {
    const names = Object.keys(pick(new StubHypervisor(SETTINGS)));
    return Object.fromEntries(
      names.map((name) => [
        name,
        (...args: unknown[]) => (pick(stub) as Record<string, (...a: unknown[]) => unknown>)[name]!(...args),
      ]),
    ) as T;
  }

  before(async () => {
    quietWorkerLogs();
    env = await TestWorkflowEnvironment.createTimeSkipping({
      server: { executable: { type: 'existing-path', path: TEMPORAL_TEST_SERVER } },
    });
    const remote = delegating((s) => s.activities().remote) as RemoteActivities;
    const sendReport = remote.sendReport;
    remote.sendReport = async (request) => {
      reports.push(request);
      return sendReport(request);
    };
    workers = await Promise.all([
      Worker.create({
        connection: env.nativeConnection,
        taskQueue: TASK_QUEUE,
        workflowBundle: { codePath: WORKFLOW_BUNDLE },
        activities: remote,
      }),
      Worker.create({
        connection: env.nativeConnection,
        taskQueue: SETTINGS.storeTaskQueue,
        activities: delegating((s) => s.activities().store) as StoreActivities,
      }),
    ]);
    running = Promise.all(workers.map((w) => w.run()));
  });
  after(async () => {
    for (const w of workers) w.shutdown();
    await running;
    await env.teardown();
  });

  function fresh(settings: Partial<WeeklySettings> = {}): StubHypervisor {
    stub = new StubHypervisor({ ...SETTINGS, ...settings });
    reports = [];
    return stub;
  }

  function start(vms = ['db']): Promise<WorkflowHandle> {
    return env.client.workflow.start('weeklyVmBackup', {
      taskQueue: TASK_QUEUE,
      workflowId: `vms-saga-${++seq}`,
      args: [{ vms }],
    });
  }

  /** Runs the weekly workflow to its end; `history` names it in test/replay when histories are captured. */
  async function weekly(vms = ['db'], history?: string): Promise<WeeklySummary> {
    const handle = await start(vms);
    const summary = (await handle.result()) as WeeklySummary;
    if (history) await captureHistory(handle, history);
    // Since several hypervisors, the VMs' cycles run in one child run per hypervisor: its history too.
    const host = summary.hosts?.[0]?.workflowId;
    if (history && host) await captureHistory(env.client.workflow.getHandle(host), `${history}-host`);
    return summary;
  }

  /** The run's summary as its report got it: also for a cancelled run, which returns none. */
  function reported(): WeeklySummary {
    const request = reports.find((r) => r.job === 'weekly');
    assert.ok(request?.outcome.summary, 'the run reported a summary');
    return request.outcome.summary as WeeklySummary;
  }

  async function until(check: () => boolean, what: string): Promise<void> {
    for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(check(), `timed out waiting for ${what}`);
  }

  const names = (vm: VmResult) => (vm.compensations ?? []).map((c) => `${c.name}${c.ok ? '' : ' (failed)'}`);
  const stateOf = (vm = 'db') => stub.vms.get(vm)!.state;

  /** A fault on the nth call of an activity only (the same activity runs in several phases). */
  const onCall = (n: number, fault: Fault) => {
    let calls = 0;
    return (): Fault => (++calls === n ? fault : undefined);
  };

  const LOCK = 'release the VM lock';
  const RESTART = 'start the VM again';
  const MERGE = 'merge the overlays back';
  const COPIES = 'end remote copies and remove partial images';
  const CHECKS = 'end remote checks';

  /** How the two modes differ where a test looks: overlay (the default) first, offline the variant. */
  const MODES = [
    {
      mode: 'overlay',
      policy: OVERLAY,
      imageActivity: 'createFrozenImage',
      imagingStep: 'imaging-frozen',
      /** An activity that runs while the VM is down (its restart owed), and what is undone when it fails. */
      downActivity: 'createOverlays',
      downUndone: [MERGE, RESTART, LOCK],
      aborted: 'weekly-overlay-aborted',
    },
    {
      mode: 'offline',
      policy: OFFLINE,
      imageActivity: 'createImage',
      imagingStep: 'imaging',
      downActivity: 'createImage',
      downUndone: [COPIES, RESTART, LOCK],
      aborted: 'weekly-aborted',
    },
  ] as const;

  it('backs up a running VM on overlays: down only while they go on, imaged running, merged before the set is recorded', async () => {
    fresh().addVm('db');
    const { vms, ok } = await weekly(['db'], 'weekly-overlay-ok');
    assert.equal(ok, true, JSON.stringify(vms[0]));
    assert.equal(vms[0]!.status, 'backed-up');
    assert.deepEqual(stub.vms.get('db')!.history, ['running', 'shut-off', 'running']);
    const calls = stub.calls.filter((c) => /Overlays|FrozenImage|ensureRunning|verifyImage|recordVerifiedSet/.test(c));
    assert.deepEqual(calls, [
      'mergeOverlays db', // one an earlier run left? (none)
      'createOverlays db',
      'ensureRunning db',
      'createFrozenImage db',
      'mergeOverlays db',
      'verifyImage db',
      'recordVerifiedSet db',
    ]);
    assert.deepEqual(
      vms[0]!.steps.map((s) => s.step).slice(0, 11),
      [
        'locking',
        'merging-left',
        'preflight',
        'store-preflight',
        'overlay-preflight',
        'stopping',
        'overlays',
        'starting',
        'imaging-frozen',
        'merging',
        'verifying',
      ],
      'each phase its own step',
    );
    assert.deepEqual(stub.onOverlays, new Set());
    assert.deepEqual(names(vms[0]!), [LOCK]);
    assert.ok(vms[0]!.downtimeMs! >= 0);
    assert.equal(stub.heldDown.size, 0, 'no held-down record remains');
    assert.equal(stub.locks.size, 0, 'the lock is released');
  });

  it('offline: backs up a running VM: stopped, imaged, started, then verified and pulled; only the lock is left to undo', async () => {
    fresh({ defaultPolicy: OFFLINE }).addVm('db');
    const { vms, ok } = await weekly(['db'], 'weekly-ok');
    assert.equal(ok, true);
    assert.equal(vms[0]!.status, 'backed-up');
    assert.deepEqual(stub.vms.get('db')!.history, ['running', 'shut-off', 'running']);
    assert.deepEqual(names(vms[0]!), [LOCK]);
    const steps = vms[0]!.steps.map((s) => s.step);
    assert.deepEqual(steps.slice(0, 7), [
      'locking',
      'preflight',
      'store-preflight',
      'stopping',
      'imaging',
      'starting',
      'verifying',
    ]);
    assert.ok(!stub.calls.some((c) => /Overlays/.test(c)), 'no overlay is touched offline');
    assert.ok(vms[0]!.downtimeMs! >= 0);
    assert.equal(stub.heldDown.size, 0, 'no held-down record remains');
    assert.equal(stub.locks.size, 0, 'the lock is released');
  });

  const FORGET = 'forget the snapshots of a set never recorded';
  const storeCalls = () =>
    stub.calls.filter((c) => /Overlays|Image|ensureRunning|recordVerifiedSet|Restic|storeFrozenDisk/.test(c));

  it('store.engine restic: each frozen disk streamed into the repository while the VM runs, merged, then recorded', async () => {
    fresh({ storeEngine: 'restic' }).addVm('db');
    const { vms, ok } = await weekly(['db'], 'weekly-restic-ok');
    assert.equal(ok, true, JSON.stringify(vms[0]));
    assert.deepEqual(storeCalls(), [
      'mergeOverlays db',
      'createOverlays db',
      'ensureRunning db',
      'storeFrozenDisk db',
      'mergeOverlays db',
      'recordResticSet db',
    ]);
    const steps = vms[0]!.steps.map((s) => s.step);
    assert.deepEqual(steps.slice(steps.indexOf('starting'), steps.indexOf('recording') + 1), [
      'starting',
      'storing',
      'merging',
      'recording',
    ]);
    assert.deepEqual(names(vms[0]!), [LOCK], 'nothing left to forget once the set is recorded');
    assert.equal(vms[0]!.stored.length, 1);
  });

  it('store.engine restic: a disk that cannot be stored: the set`s snapshots forgotten, overlays merged, VM running', async () => {
    fresh({ storeEngine: 'restic' }).addVm('db');
    stub.faults.storeFrozenDisk = () => 'fail-permanently';
    const { vms } = await weekly();
    assert.equal(vms[0]!.status, 'failed');
    assert.equal(vms[0]!.failedStep, 'storing');
    assert.deepEqual(names(vms[0]!), [FORGET, MERGE, LOCK]);
    assert.ok(!stub.calls.includes('recordResticSet db'));
    assert.equal(stateOf(), 'running');
    assert.deepEqual(stub.onOverlays, new Set());
  });

  it('store.engine restic: a failed record (repository check) forgets the stored disks; the set never counts', async () => {
    fresh({ storeEngine: 'restic' }).addVm('db');
    stub.faults.recordResticSet = () => 'fail-permanently';
    const { vms } = await weekly();
    assert.equal(vms[0]!.failedStep, 'recording');
    assert.deepEqual(names(vms[0]!), [FORGET, LOCK], 'the overlays were merged already');
    assert.ok(stub.calls.includes('discardResticPartials db'));
    assert.equal(stateOf(), 'running');
  });

  it('store.engine restic, offline: the image verified in the image area is streamed into the repository', async () => {
    fresh({ storeEngine: 'restic', defaultPolicy: OFFLINE }).addVm('db');
    const { vms, ok } = await weekly();
    assert.equal(ok, true, JSON.stringify(vms[0]));
    assert.deepEqual(storeCalls(), [
      'createImage db',
      'ensureRunning db',
      'verifyImage db',
      'recordVerifiedSet db',
      'storeFrozenDisk db',
      'recordResticSet db',
    ]);
    assert.ok(!stub.calls.includes('pullImage db'));
  });

  it('store.engine restic, offline, streamWhileDown: each disk streamed from the shut-off VM, then it starts; no image-area copy', async () => {
    fresh({ storeEngine: 'restic', defaultPolicy: { ...OFFLINE, streamWhileDown: true } }).addVm('db');
    const { vms, ok } = await weekly();
    assert.equal(ok, true, JSON.stringify(vms[0]));
    assert.deepEqual(storeCalls(), ['storeFrozenDisk db', 'ensureRunning db', 'recordResticSet db']);
    const steps = vms[0]!.steps.map((s) => s.step);
    assert.deepEqual(steps.slice(steps.indexOf('stopping'), steps.indexOf('recording') + 1), [
      'stopping',
      'storing',
      'starting',
      'recording',
    ]);
    assert.equal(vms[0]!.images.length, 1, 'the stored disks are the images');
    assert.equal(stateOf(), 'running');
  });

  it('store.engine restic, streamWhileDown: the downtime budget runs out mid-stream: the snapshots forgotten, the VM started', async () => {
    // 63 s budget, 60 s kept for the boot: 3 s for the stream, which hangs.
    fresh({ storeEngine: 'restic', defaultPolicy: { ...OFFLINE, streamWhileDown: true, maxDowntimeSeconds: 63 } }).addVm(
      'db',
    );
    stub.faults.storeFrozenDisk = () => 'hang';
    const { vms } = await weekly();
    assert.equal(vms[0]!.status, 'failed');
    assert.equal(vms[0]!.failedStep, 'storing');
    assert.match(vms[0]!.reason!, /downtime budget of 63\.0 s reached/);
    assert.ok(stub.calls.includes('discardResticPartials db'), 'what was stored of the set is forgotten');
    assert.ok(!stub.calls.includes('recordResticSet db'));
    assert.equal(stateOf(), 'running');
  });

  it('overlay: a disk overlays cannot cover: imaged offline instead, the reason noted', async () => {
    fresh().addVm('db');
    // The stub's activities with an overlay preflight that finds a disk overlays cannot cover.
    const activities = stub.activities.bind(stub);
    stub.activities = () => {
      const all = activities();
      all.remote.overlayPreflight = async () => ({
        ok: false,
        filesystems: [],
        offlineInstead: true,
        reason: 'vdb is a raw file: imaged offline',
      });
      return all;
    };
    const { vms } = await weekly();
    assert.equal(vms[0]!.status, 'backed-up', JSON.stringify(vms[0]));
    assert.equal(vms[0]!.reason, 'vdb is a raw file: imaged offline');
    assert.ok(stub.calls.includes('createImage db') && !stub.calls.includes('createOverlays db'));
  });

  it('overlay: overlays an earlier run left are merged first, and the reason says so', async () => {
    fresh().addVm('db');
    stub.onOverlays.add('db');
    const { vms } = await weekly();
    assert.equal(vms[0]!.status, 'backed-up');
    assert.equal(vms[0]!.steps[1]!.step, 'merging-left');
    assert.match(vms[0]!.reason ?? '', /overlays an earlier run left merged \(vda\)/);
  });

  it('an earlier weekly run still open blocks nothing: each VM`s lock decides', async () => {
    fresh().addVm('db').addVm('web');
    stub.earlierRuns = ['vms-scheduled-2026-11-29T05:00:00Z'];
    stub.locks.set('web', { workflowId: 'vms-scheduled-2026-11-29T05:00:00Z', runId: 'open-run' });
    const summary = await weekly(['db', 'web'], 'weekly-hosts-lock');
    assert.equal(summary.alreadyRunning, undefined);
    const byVm = Object.fromEntries(summary.vms.map((v) => [v.vm, v]));
    assert.equal(byVm.db!.status, 'backed-up', JSON.stringify(byVm.db));
    assert.equal(byVm.web!.status, 'skipped');
    assert.match(byVm.web!.reason!, /left to vms-scheduled-2026-11-29T05:00:00Z/);
    assert.equal(byVm.db!.hypervisor, 'stub');
    assert.ok(!stub.calls.some((c) => c.startsWith('preflightVm web')));
  });

  it('a hypervisor that does not answer at the start: its VMs are reported untouched at once', async () => {
    fresh().addVm('db');
    stub.unreachable = 'hypervisor: connect ECONNREFUSED 127.0.0.1:22';
    const summary = await weekly(['db']);
    assert.equal(summary.ok, false);
    assert.equal(summary.vms[0]!.status, 'skipped');
    assert.match(summary.vms[0]!.reason!, /hypervisor unreachable, untouched: .*ECONNREFUSED/);
    assert.equal(summary.hosts?.[0]?.unreachable, stub.unreachable);
    assert.ok(!stub.calls.some((c) => c.startsWith('lockVm') || c.startsWith('requestShutdown')));
    assert.deepEqual(stub.vms.get('db')!.history, ['running']);
  });

  it('offline: forces off at the VM`s own shutdown timeout (900 s): the waiting activity`s timeouts derive from it', async () => {
    fresh({
      policy: { db: { shutdownTimeoutSeconds: 900, forceOff: true, maxDowntimeSeconds: 7200, imaging: 'offline' } },
    }).addVm('db', 'running', false);
    const { vms } = await weekly();
    assert.equal(vms[0]!.status, 'backed-up');
    assert.match(vms[0]!.reason!, /forced off after 900 s/);
    assert.deepEqual(stub.awaitedSeconds, [900]);
    assert.ok(stub.timeouts.awaitShutOff! > 900_000, 'awaitShutOff may run the whole 900 s');
    assert.ok(stub.timeouts.ensureRunning! > 900_000, 'the restart may watch a shutdown that long');
    assert.ok(stub.timeouts.createImage! > 7200_000, 'imaging is bounded by the downtime budget, not less');
  });

  it('offline: abandons imaging past the downtime budget and starts the VM again', async () => {
    // 63 s budget, 60 s kept for the boot: 3 s for the copy, which hangs.
    fresh({ defaultPolicy: { ...OFFLINE, maxDowntimeSeconds: 63 } }).addVm('db');
    stub.faults.createImage = () => 'hang';
    const { vms } = await weekly();
    assert.equal(vms[0]!.status, 'failed');
    assert.equal(vms[0]!.failedStep, 'imaging');
    assert.match(vms[0]!.reason!, /downtime budget of 63\.0 s reached while imaging/);
    assert.equal(stateOf(), 'running');
    assert.equal(stub.partials.size, 0);
  });

  for (const m of MODES) {
    const fresh_ = (policy: Partial<VmPolicy> = {}) => fresh({ defaultPolicy: { ...m.policy, ...policy } });

    it(`${m.mode}: images a VM found off and leaves it off; no downtime is reported`, async () => {
      fresh_().addVm('db', 'shut-off');
      const { vms } = await weekly();
      assert.equal(vms[0]!.status, 'backed-up');
      assert.equal(vms[0]!.wasRunning, false);
      assert.equal(stateOf(), 'shut-off');
      assert.equal(vms[0]!.downtimeMs, undefined);
      assert.ok(!stub.calls.some((c) => c.startsWith('requestShutdown')));
      assert.ok(!stub.calls.includes('createOverlays db'), 'a VM found off needs no overlays');
    });

    it(`${m.mode}: starts a VM found off with a held-down record of a closed run, and backs it up as a running VM`, async () => {
      fresh_().addVm('db', 'shut-off');
      stub.heldDown.set('db', {
        vm: 'db',
        owner: { workflowId: 'vms-terminated', runId: 'gone' },
        since: new Date(Date.now() - 60_000).toISOString(),
        budgetSeconds: 3600,
      });
      stub.closedRuns.add('gone');
      const { vms } = await weekly();
      assert.equal(vms[0]!.status, 'backed-up');
      assert.equal(vms[0]!.wasRunning, true);
      assert.equal(vms[0]!.heldDownBy, 'vms-terminated');
      assert.equal(stateOf(), 'running');
      assert.equal(stub.heldDown.size, 0);
    });

    it(`${m.mode}: a VM left off past its downtime budget is started first (its own step), then backed up running`, async () => {
      fresh_({ maxDowntimeSeconds: 600 }).addVm('db', 'shut-off');
      stub.heldDown.set('db', {
        vm: 'db',
        owner: { workflowId: 'vms-terminated', runId: 'gone' },
        since: new Date(Date.now() - 3_600_000).toISOString(),
        budgetSeconds: 600,
      });
      stub.closedRuns.add('gone');
      const { vms } = await weekly();
      assert.equal(vms[0]!.status, 'backed-up', JSON.stringify(vms[0]));
      const steps = vms[0]!.steps.map((s) => s.step);
      assert.ok(steps.indexOf('starting-left-off') < steps.indexOf('stopping'), steps.join(' '));
      assert.ok(vms[0]!.downtimeMs! >= 3_600_000, 'its downtime counts from the earlier run`s stop');
      assert.equal(stateOf(), 'running');
    });

    it(`${m.mode}: skips a VM before stopping it when preflight says no (space), untouched and running`, async () => {
      fresh_().addVm('db');
      stub.preflightReason.db = 'not enough space in the image area';
      const { vms, ok } = await weekly();
      assert.equal(ok, false);
      assert.equal(vms[0]!.status, 'skipped');
      assert.deepEqual(stub.vms.get('db')!.history, ['running']);
      assert.deepEqual(names(vms[0]!), [LOCK]);
    });

    it(`${m.mode}: skips a VM another open run holds, without touching it or its lock`, async () => {
      fresh_().addVm('db');
      stub.locks.set('db', { workflowId: 'vms-other', runId: 'open-run' });
      const { vms } = await weekly();
      assert.equal(vms[0]!.status, 'skipped');
      assert.match(vms[0]!.reason!, /left to vms-other: that run holds this VM/);
      assert.equal(stub.locks.get('db')!.runId, 'open-run');
      assert.ok(!stub.calls.some((c) => c.startsWith('preflightVm') || c.startsWith('mergeOverlays')));
    });

    it(`${m.mode}: takes over the lock of a closed run`, async () => {
      fresh_().addVm('db');
      stub.locks.set('db', { workflowId: 'vms-old', runId: 'closed-run' });
      stub.closedRuns.add('closed-run');
      const { vms } = await weekly();
      assert.equal(vms[0]!.status, 'backed-up');
      assert.equal(stub.locks.size, 0);
    });

    it(`${m.mode}: leaves a VM that ignores the shutdown running and skipped, without forcing it off`, async () => {
      fresh_().addVm('db', 'running', false);
      const { vms } = await weekly();
      assert.equal(vms[0]!.status, 'skipped');
      assert.match(vms[0]!.reason!, /did not shut down within 30 s/);
      assert.equal(stateOf(), 'running');
      assert.deepEqual(names(vms[0]!), [RESTART, LOCK]);
      assert.equal(vms[0]!.downtimeMs, undefined, 'a VM that never went off had no downtime');
      assert.ok(!stub.calls.some((c) => c.startsWith('forceOff')));
    });

    it(`${m.mode}: forces off a VM that ignores the shutdown when its policy allows it`, async () => {
      fresh_({ forceOff: true }).addVm('db', 'running', false);
      const { vms } = await weekly();
      assert.equal(vms[0]!.status, 'backed-up');
      assert.match(vms[0]!.reason!, /forced off after 30 s/);
      assert.deepEqual(stub.vms.get('db')!.history, ['running', 'shut-off', 'running']);
    });

    it(`${m.mode}: leaves a paused VM as found`, async () => {
      fresh_().addVm('db', 'paused');
      const { vms } = await weekly();
      assert.equal(vms[0]!.status, 'skipped');
      assert.equal(stateOf(), 'paused');
    });

    it(`${m.mode}: retries a restart that fails (libvirtd restarting) until the VM runs: the cycle still succeeds`, async () => {
      fresh_().addVm('db');
      stub.faults.ensureRunning = (attempt) => (attempt <= 3 ? 'fail' : undefined);
      const { vms } = await weekly();
      assert.equal(vms[0]!.status, 'backed-up');
      assert.equal(stateOf(), 'running');
      assert.equal(stub.calls.filter((c) => c === 'ensureRunning db').length, 4);
    });

    it(`${m.mode}: runs a compensation that fails, then succeeds, and records it as done`, async () => {
      fresh_().addVm('db');
      stub.faults[m.downActivity] = () => 'fail-permanently';
      stub.faults.ensureRunning = (attempt) => (attempt <= 2 ? 'fail' : undefined);
      const { vms } = await weekly();
      assert.equal(vms[0]!.status, 'failed');
      assert.equal(stateOf(), 'running');
      assert.deepEqual(names(vms[0]!), m.downUndone);
    });

    it(`${m.mode}: records a compensation that fails for good (the VM vanished) as failed, never swallowed`, async () => {
      fresh_().addVm('db');
      stub.faults[m.downActivity] = () => 'fail-permanently';
      stub.faults.ensureRunning = () => {
        stub.vms.get('db')!.state = 'missing';
        return undefined;
      };
      const { vms } = await weekly();
      assert.equal(vms[0]!.status, 'failed');
      assert.equal(vms[0]!.runningAtEnd, false);
      assert.match(vms[0]!.reason!, /could not restart: db no longer exists/);
      assert.deepEqual(
        names(vms[0]!),
        m.downUndone.map((n) => (n === RESTART ? `${n} (failed)` : n)),
      );
    });

    it(`${m.mode}: answers an abort during imaging once the VM runs again`, async () => {
      fresh_().addVm('db');
      stub.faults[m.imageActivity] = () => 'hang';
      const handle = await start();
      await until(() => stub.calls.includes(`${m.imageActivity} db`), 'imaging');
      const answer = await handle.executeUpdate(abortUpdate, { args: ['maintenance'] });
      assert.deepEqual(answer.running, ['db']);
      assert.equal(stateOf(), 'running');
      const summary = (await handle.result()) as WeeklySummary;
      await captureHistory(handle, m.aborted);
      assert.equal(summary.vms[0]!.status, 'aborted');
      assert.equal(summary.vms[0]!.failedStep, m.imagingStep);
      assert.equal(summary.aborted, 'maintenance');
      assert.deepEqual(stub.onOverlays, new Set());
    });

    it(`${m.mode}: cycles a VM named twice only once`, async () => {
      fresh_().addVm('db');
      const { vms } = await weekly(['db', 'db']);
      assert.equal(vms.length, 1);
      assert.equal(stub.calls.filter((c) => c === `${m.imageActivity} db`).length, 1);
    });

    it(`${m.mode}: goes on with the other VMs when one fails; the run is not ok`, async () => {
      fresh_().addVm('db').addVm('web');
      stub.faults[m.imageActivity] = (_attempt, vm) => (vm === 'db' ? 'fail-permanently' : undefined);
      const { vms, ok } = await weekly(['db', 'web']);
      assert.equal(ok, false);
      assert.deepEqual(
        vms.map((v) => `${v.vm} ${v.status}`),
        ['db failed', 'web backed-up'],
      );
      assert.equal(stateOf('db'), 'running');
      assert.equal(stateOf('web'), 'running');
    });
  }

  // Each step failing for good: the VM runs at the end, the step is named, the right compensations ran.
  type Failing = { activity: string; step: VmStep; undone: string[]; fault?: () => () => Fault; history?: string };
  const late: Failing[] = [
    { activity: 'verifyImage', step: 'verifying', undone: [CHECKS, LOCK] },
    { activity: 'recordVerifiedSet', step: 'verifying', undone: [CHECKS, LOCK] },
    { activity: 'pullImage', step: 'pulling', undone: [LOCK] },
    { activity: 'recordStoredSet', step: 'pulling', undone: [LOCK] },
    { activity: 'applyStoreRetention', step: 'store-retention', undone: [LOCK] },
    { activity: 'applyRetention', step: 'retention', undone: [LOCK] },
  ];
  const failing: Record<(typeof MODES)[number]['mode'], Failing[]> = {
    overlay: [
      {
        activity: 'mergeOverlays',
        step: 'merging-left',
        undone: [LOCK],
        fault: () => onCall(1, 'fail-permanently'),
      },
      { activity: 'preflightVm', step: 'preflight', undone: [LOCK] },
      { activity: 'storePreflight', step: 'store-preflight', undone: [LOCK] },
      { activity: 'overlayPreflight', step: 'overlay-preflight', undone: [LOCK] },
      { activity: 'requestShutdown', step: 'stopping', undone: [RESTART, LOCK] },
      { activity: 'awaitShutOff', step: 'stopping', undone: [RESTART, LOCK] },
      { activity: 'createOverlays', step: 'overlays', undone: [MERGE, RESTART, LOCK] },
      { activity: 'createFrozenImage', step: 'imaging-frozen', undone: [COPIES, MERGE, LOCK] },
      {
        // The merge fails during the cycle only: the compensation's own merge succeeds.
        activity: 'mergeOverlays',
        step: 'merging',
        undone: [MERGE, LOCK],
        fault: () => onCall(2, 'fail-permanently'),
        history: 'weekly-overlay-merge-failed',
      },
      ...late,
    ],
    offline: [
      { activity: 'preflightVm', step: 'preflight', undone: [LOCK] },
      { activity: 'storePreflight', step: 'store-preflight', undone: [LOCK] },
      { activity: 'requestShutdown', step: 'stopping', undone: [RESTART, LOCK] },
      { activity: 'awaitShutOff', step: 'stopping', undone: [RESTART, LOCK] },
      { activity: 'createImage', step: 'imaging', undone: [COPIES, RESTART, LOCK], history: 'weekly-failed-step' },
      ...late,
    ],
  };
  for (const m of MODES) {
    for (const { activity, step, undone, fault, history } of failing[m.mode]) {
      it(`${m.mode}: ${activity} failing: the cycle fails at ${step}, the VM runs, compensations: ${undone.join(', ')}`, async () => {
        fresh({ defaultPolicy: m.policy }).addVm('db');
        stub.faults[activity] = fault ? fault() : () => 'fail-permanently';
        const { vms, ok } = await weekly(['db'], history);
        assert.equal(ok, false);
        assert.equal(vms[0]!.status, 'failed');
        assert.equal(vms[0]!.failedStep, step);
        assert.match(vms[0]!.reason!, /failed for good \(injected\)/);
        assert.equal(stateOf(), 'running');
        assert.notEqual(vms[0]!.runningAtEnd, false);
        assert.deepEqual(names(vms[0]!), undone);
        assert.equal(stub.partials.size, 0, 'no partial image or remote copy left');
        assert.deepEqual(stub.onOverlays, new Set(), 'no overlay left');
        assert.equal(stub.heldDown.size, 0);
        assert.equal(stub.locks.size, 0);
        // A restart that already happened is not repeated (there used to be a needless "restarting" step).
        if (!undone.includes(RESTART)) assert.ok(!vms[0]!.steps.some((s) => s.step === 'restarting'));
      });
    }
  }

  // Cancel (and abort) while each step is under way: the VM runs again before the run ends.
  type Cancelled = { activity: string; step: VmStep; call?: number; history?: string };
  const cancelled: Record<(typeof MODES)[number]['mode'], Cancelled[]> = {
    overlay: [
      { activity: 'lockVm', step: 'locking' },
      { activity: 'mergeOverlays', step: 'merging-left' },
      { activity: 'preflightVm', step: 'preflight' },
      { activity: 'awaitShutOff', step: 'stopping' },
      { activity: 'createOverlays', step: 'overlays' },
      { activity: 'ensureRunning', step: 'starting' },
      { activity: 'createFrozenImage', step: 'imaging-frozen' },
      { activity: 'mergeOverlays', step: 'merging', call: 2 },
      { activity: 'verifyImage', step: 'verifying' },
      { activity: 'pullImage', step: 'pulling' },
    ],
    offline: [
      { activity: 'lockVm', step: 'locking' },
      { activity: 'preflightVm', step: 'preflight' },
      { activity: 'awaitShutOff', step: 'stopping' },
      { activity: 'createImage', step: 'imaging', history: 'weekly-cancelled' },
      { activity: 'ensureRunning', step: 'starting' },
      { activity: 'verifyImage', step: 'verifying' },
      { activity: 'pullImage', step: 'pulling' },
    ],
  };
  for (const m of MODES) {
    for (const { activity, step, call = 1, history } of cancelled[m.mode]) {
      it(`${m.mode}: cancel during ${step}: aborted, the VM runs, nothing left behind`, async () => {
        fresh({ defaultPolicy: m.policy }).addVm('db');
        let calls = 0;
        let hung = false;
        stub.faults[activity] = (): Fault => {
          // Only the nth call hangs: the restart compensation of ensureRunning itself must get through.
          if (++calls !== call) return undefined;
          hung = true;
          return 'hang';
        };
        const handle = await start();
        await until(() => hung, `${activity} to start`);
        await handle.cancel();
        await assert.rejects(handle.result(), WorkflowFailedError);
        if (history) await captureHistory(handle, history);
        const vm = reported().vms[0]!;
        assert.equal(vm.status, 'aborted');
        assert.equal(vm.failedStep, step);
        assert.equal(stateOf(), 'running');
        assert.equal(stub.partials.size, 0);
        assert.deepEqual(stub.onOverlays, new Set());
        assert.equal(stub.locks.size, 0);
        assert.equal(stub.heldDown.size, 0);
      });
    }
  }

  it('weekly: the verified sets go to every off-site repository; one behind leaves the run OK and says so', async () => {
    fresh().addVm('db').addVm('web');
    const copied = { repository: 'far', status: 'copied' as const, saved: 4, skipped: 0, bytesAdded: 1024 };
    stub.offsite = {
      far: async () => copied,
      // Refused for good (the daily test shows the tries of a server that is down): reported behind at once.
      near: async () => {
        throw ApplicationFailure.nonRetryable(
          'restic copy: unexpected HTTP response (401)',
          'ResticWrongPasswordError',
        );
      },
    };
    const summary = await weekly(['db', 'web']);
    assert.equal(summary.ok, true, JSON.stringify(summary.vms.map((v) => [v.vm, v.status, v.reason])));
    assert.deepEqual(
      stub.calls.filter((c) => c.startsWith('copyToOffsite far')),
      [`copyToOffsite far vm=db+set=${summary.stamp} vm=web+set=${summary.stamp}`],
    );
    assert.equal(stub.calls.filter((c) => c.startsWith('copyToOffsite near')).length, 1, 'not retried');
    assert.deepEqual(
      summary.offsite?.map((o) => [o.repository, o.status]),
      [
        ['far', 'copied'],
        ['near', 'behind'],
      ],
    );
    assert.match(summary.offsite![1]!.reason!, /HTTP response \(401\)/);
    const report = weeklyReport(
      { state: 'completed', summary },
      { namespace: 'default', workflowId: 'w', runId: 'r' },
      summary.week,
    );
    assert.match(report.subject, /^\S+ OK weekly .*; off-site near BEHIND$/);
    assert.match(report.text, /off-site near: behind; .*HTTP response \(401\)/);
    assert.match(report.text, /off-site far: copied; 4 snapshot\(s\) copied, 0 already there; 1\.0 KiB added there/);
  });

  it('weekly: no off-site repository, no copy; a run with no verified set copies nothing', async () => {
    fresh().addVm('db');
    assert.equal((await weekly()).offsite, undefined);
    fresh().addVm('db', 'missing');
    stub.offsite = { far: async () => assert.fail('nothing to copy') };
    const summary = await weekly();
    assert.equal(summary.offsite, undefined);
    assert.ok(!stub.calls.some((c) => c.startsWith('copyToOffsite')));
  });

  it('guardian: merges the overlays of a VM whose run is gone, not of one a live run holds', async () => {
    fresh().addVm('db').addVm('web');
    stub.onOverlays.add('db').add('web');
    stub.locks.set('web', { workflowId: 'vms-open', runId: 'r9' });
    const summary = (await env.client.workflow.execute('vmGuardian', {
      taskQueue: TASK_QUEUE,
      workflowId: `guardian-${++seq}`,
    })) as GuardianSummary;
    assert.deepEqual(summary.overlaysMerged, ['db']);
    assert.deepEqual(stub.onOverlays, new Set(['web']));
    assert.equal(stub.locks.has('db'), false, 'the guardian released the lock it took');
    assert.deepEqual(stub.overlayAlerts, [[{ vm: 'db', merged: ['vda'], removed: [] }]], 'one alert, for db only');
  });

  it('guardian: alerts naming the VM and the closed run that left it on overlays, and a merge that failed', async () => {
    fresh().addVm('db').addVm('web');
    stub.onOverlays.add('db').add('web');
    stub.locks.set('db', { workflowId: 'vms-2026-W48', runId: 'r7' });
    stub.closedRuns.add('r7');
    stub.faults.mergeOverlays = (_attempt, vm) => (vm === 'web' ? 'fail-permanently' : undefined);
    const summary = (await env.client.workflow.execute('vmGuardian', {
      taskQueue: TASK_QUEUE,
      workflowId: `guardian-${++seq}`,
    })) as GuardianSummary;
    assert.deepEqual(summary.overlaysMerged, ['db']);
    assert.equal(stub.overlayAlerts.length, 1);
    const [db, web] = stub.overlayAlerts[0]!;
    assert.deepEqual(db, { vm: 'db', leftBy: 'vms-2026-W48', merged: ['vda'], removed: [] });
    assert.equal(web!.vm, 'web');
    assert.match(web!.error ?? '', /mergeOverlays failed for good/);
  });

  it('guardian: no overlays alert when no VM was on overlays', async () => {
    fresh().addVm('db');
    await env.client.workflow.execute('vmGuardian', { taskQueue: TASK_QUEUE, workflowId: `guardian-${++seq}` });
    assert.deepEqual(stub.overlayAlerts, []);
  });

  it('guardian: starts a VM held down by a closed run and alerts; leaves one whose run is open and in budget', async () => {
    fresh().addVm('db', 'shut-off').addVm('web', 'shut-off');
    const since = new Date(Date.now() - 120_000).toISOString();
    stub.heldDown.set('db', {
      vm: 'db',
      owner: { workflowId: 'vms-terminated', runId: 'r1' },
      since,
      budgetSeconds: 3600,
    });
    stub.heldDown.set('web', { vm: 'web', owner: { workflowId: 'vms-open', runId: 'r2' }, since, budgetSeconds: 3600 });
    stub.closedRuns.add('r1');
    const handle = await env.client.workflow.start('vmGuardian', {
      taskQueue: TASK_QUEUE,
      workflowId: `guardian-${++seq}`,
    });
    const summary = (await handle.result()) as GuardianSummary;
    await captureHistory(handle, 'guardian-every-hypervisor');
    assert.deepEqual(
      summary.putBack.map((p) => [p.vm, p.heldBy, p.running]),
      [['db', 'vms-terminated', true]],
    );
    assert.ok(summary.putBack[0]!.downMs >= 120_000);
    assert.equal(stateOf('db'), 'running');
    assert.equal(stateOf('web'), 'shut-off');
    assert.deepEqual(stub.alerts, [['db']]);
    assert.ok(stub.calls.indexOf('endVmCopies db') < stub.calls.indexOf('ensureRunning db'));
  });

  it('guardian: starts a VM past its downtime budget even while its run is open', async () => {
    fresh().addVm('db', 'shut-off');
    const since = new Date(Date.now() - 3_600_000).toISOString();
    stub.heldDown.set('db', { vm: 'db', owner: { workflowId: 'vms-stuck', runId: 'r3' }, since, budgetSeconds: 600 });
    const summary = (await env.client.workflow.execute('vmGuardian', {
      taskQueue: TASK_QUEUE,
      workflowId: `guardian-${++seq}`,
    })) as GuardianSummary;
    assert.match(summary.putBack[0]!.why, /over its downtime budget of 600 s/);
    assert.equal(stateOf('db'), 'running');
  });
});
