/**
 * Every exit path of the VM saga and the weekly run, on Temporal's time-skipping test server with stub
 * activities (no root, libvirt or QEMU): which compensations ran, and the VM's final state.
 * The real-libvirt suite (test/vm) is the end-to-end proof; this one is the logic, in seconds.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import type { RemoteActivities, StoreActivities } from '../../activities';
import type { ReportRequest } from '../../domain/report';
import type { VmResult, WeeklySettings, WeeklySummary } from '../../domain/weekly-summary';
import type { GuardianSummary } from '../../domain/guardian';
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
const SETTINGS: WeeklySettings = {
  vms: ['db'],
  concurrency: 1,
  keepImages: 2,
  store: true,
  storeTaskQueue: 'saga-store',
  heartbeatTimeoutSeconds: 2,
  policy: {},
  defaultPolicy: { shutdownTimeoutSeconds: 30, forceOff: false, maxDowntimeSeconds: 3600 },
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

  it('backs up a running VM: stopped, imaged, started, then verified and pulled; only the lock is left to undo', async () => {
    fresh().addVm('db');
    const { vms, ok } = await weekly(['db'], 'weekly-ok');
    assert.equal(ok, true);
    assert.equal(vms[0]!.status, 'backed-up');
    assert.deepEqual(stub.vms.get('db')!.history, ['running', 'shut-off', 'running']);
    assert.deepEqual(names(vms[0]!), ['release the VM lock']);
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
    assert.ok(steps.indexOf('starting') < steps.indexOf('verifying'), 'verification runs after the VM is back');
    assert.ok(vms[0]!.downtimeMs! >= 0);
    assert.equal(stub.heldDown.size, 0, 'no held-down record remains');
    assert.equal(stub.locks.size, 0, 'the lock is released');
  });

  it('images a VM found off and leaves it off; no downtime is reported', async () => {
    fresh().addVm('db', 'shut-off');
    const { vms } = await weekly();
    assert.equal(vms[0]!.status, 'backed-up');
    assert.equal(vms[0]!.wasRunning, false);
    assert.equal(stateOf(), 'shut-off');
    assert.equal(vms[0]!.downtimeMs, undefined);
    assert.ok(!stub.calls.some((c) => c.startsWith('requestShutdown')));
  });

  it('starts a VM found off with a held-down record of a closed run, and backs it up as a running VM', async () => {
    fresh().addVm('db', 'shut-off');
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

  it('skips a VM before stopping it when preflight says no (space), untouched and running', async () => {
    fresh().addVm('db');
    stub.preflightReason.db = 'not enough space in the image area';
    const { vms, ok } = await weekly();
    assert.equal(ok, false);
    assert.equal(vms[0]!.status, 'skipped');
    assert.deepEqual(stub.vms.get('db')!.history, ['running']);
    assert.deepEqual(names(vms[0]!), ['release the VM lock']);
  });

  it('skips a VM another open run holds, without touching it or its lock', async () => {
    fresh().addVm('db');
    stub.locks.set('db', { workflowId: 'vms-other', runId: 'open-run' });
    const { vms } = await weekly();
    assert.equal(vms[0]!.status, 'skipped');
    assert.match(vms[0]!.reason!, /another run is working on this VM: vms-other/);
    assert.equal(stub.locks.get('db')!.runId, 'open-run');
    assert.ok(!stub.calls.some((c) => c.startsWith('preflightVm')));
  });

  it('takes over the lock of a closed run', async () => {
    fresh().addVm('db');
    stub.locks.set('db', { workflowId: 'vms-old', runId: 'closed-run' });
    stub.closedRuns.add('closed-run');
    const { vms } = await weekly();
    assert.equal(vms[0]!.status, 'backed-up');
    assert.equal(stub.locks.size, 0);
  });

  it('leaves a VM that ignores the shutdown running and skipped, without forcing it off', async () => {
    fresh().addVm('db', 'running', false);
    const { vms } = await weekly();
    assert.equal(vms[0]!.status, 'skipped');
    assert.match(vms[0]!.reason!, /did not shut down within 30 s/);
    assert.equal(stateOf(), 'running');
    assert.deepEqual(names(vms[0]!), ['start the VM again', 'release the VM lock']);
    assert.equal(vms[0]!.downtimeMs, undefined, 'a VM that never went off had no downtime');
    assert.ok(!stub.calls.some((c) => c.startsWith('forceOff')));
  });

  it('forces off a VM that ignores the shutdown when its policy allows it', async () => {
    fresh({ defaultPolicy: { ...SETTINGS.defaultPolicy, forceOff: true } }).addVm('db', 'running', false);
    const { vms } = await weekly();
    assert.equal(vms[0]!.status, 'backed-up');
    assert.match(vms[0]!.reason!, /forced off after 30 s/);
    assert.deepEqual(stub.vms.get('db')!.history, ['running', 'shut-off', 'running']);
  });

  it('forces off at the VM`s own shutdown timeout (900 s): the waiting activity`s timeouts derive from it', async () => {
    fresh({ policy: { db: { shutdownTimeoutSeconds: 900, forceOff: true, maxDowntimeSeconds: 7200 } } }).addVm(
      'db',
      'running',
      false,
    );
    const { vms } = await weekly();
    assert.equal(vms[0]!.status, 'backed-up');
    assert.match(vms[0]!.reason!, /forced off after 900 s/);
    assert.deepEqual(stub.awaitedSeconds, [900]);
    assert.ok(stub.timeouts.awaitShutOff! > 900_000, 'awaitShutOff may run the whole 900 s');
    assert.ok(stub.timeouts.ensureRunning! > 900_000, 'the restart may watch a shutdown that long');
    assert.ok(stub.timeouts.createImage! > 7200_000, 'imaging is bounded by the downtime budget, not less');
  });

  it('leaves the VMs to a weekly run already under way (schedule and CLI at once)', async () => {
    fresh().addVm('db');
    stub.earlierRuns = ['vms-scheduled-2026-11-29T05:00:00Z'];
    const summary = await weekly(['db'], 'weekly-already-running');
    assert.equal(summary.alreadyRunning, 'vms-scheduled-2026-11-29T05:00:00Z');
    assert.deepEqual(summary.vms, []);
    assert.ok(!stub.calls.some((c) => c.startsWith('lockVm')));
  });

  it('leaves a paused VM as found', async () => {
    fresh().addVm('db', 'paused');
    const { vms } = await weekly();
    assert.equal(vms[0]!.status, 'skipped');
    assert.equal(stateOf(), 'paused');
  });

  // Each step failing for good: the VM runs at the end, the step is named, the right compensations ran.
  const failing: [activity: string, step: string, undone: string[]][] = [
    ['preflightVm', 'preflight', ['release the VM lock']],
    ['storePreflight', 'store-preflight', ['release the VM lock']],
    ['requestShutdown', 'stopping', ['start the VM again', 'release the VM lock']],
    ['awaitShutOff', 'stopping', ['start the VM again', 'release the VM lock']],
    [
      'createImage',
      'imaging',
      ['end remote copies and remove partial images', 'start the VM again', 'release the VM lock'],
    ],
    ['verifyImage', 'verifying', ['end remote checks', 'release the VM lock']],
    ['recordVerifiedSet', 'verifying', ['end remote checks', 'release the VM lock']],
    ['pullImage', 'pulling', ['release the VM lock']],
    ['recordStoredSet', 'pulling', ['release the VM lock']],
    ['applyStoreRetention', 'store-retention', ['release the VM lock']],
    ['applyRetention', 'retention', ['release the VM lock']],
  ];
  for (const [activity, step, undone] of failing) {
    it(`${activity} failing: the cycle fails at ${step}, the VM runs, compensations: ${undone.join(', ')}`, async () => {
      fresh().addVm('db');
      stub.faults[activity] = () => 'fail-permanently';
      const { vms, ok } = await weekly(['db'], activity === 'createImage' ? 'weekly-failed-step' : undefined);
      assert.equal(ok, false);
      assert.equal(vms[0]!.status, 'failed');
      assert.equal(vms[0]!.failedStep, step);
      assert.match(vms[0]!.reason!, /failed for good \(injected\)/);
      assert.equal(stateOf(), 'running');
      assert.notEqual(vms[0]!.runningAtEnd, false);
      assert.deepEqual(names(vms[0]!), undone);
      assert.equal(stub.partials.size, 0, 'no partial image or remote copy left');
      assert.equal(stub.heldDown.size, 0);
      assert.equal(stub.locks.size, 0);
      // A restart that already happened is not repeated (there used to be a needless "restarting" step).
      if (!undone.some((n) => n.startsWith('start the VM')))
        assert.ok(!vms[0]!.steps.some((s) => s.step === 'restarting'));
    });
  }

  it('retries a restart that fails (libvirtd restarting) until the VM runs: the cycle still succeeds', async () => {
    fresh().addVm('db');
    stub.faults.ensureRunning = (attempt) => (attempt <= 3 ? 'fail' : undefined);
    const { vms } = await weekly();
    assert.equal(vms[0]!.status, 'backed-up');
    assert.equal(stateOf(), 'running');
    assert.equal(stub.calls.filter((c) => c === 'ensureRunning db').length, 4);
  });

  it('runs a compensation that fails, then succeeds, and records it as done', async () => {
    fresh().addVm('db');
    stub.faults.createImage = () => 'fail-permanently';
    stub.faults.ensureRunning = (attempt) => (attempt <= 2 ? 'fail' : undefined);
    const { vms } = await weekly();
    assert.equal(vms[0]!.status, 'failed');
    assert.equal(stateOf(), 'running');
    assert.ok(vms[0]!.compensations!.every((c) => c.ok));
  });

  it('records a compensation that fails for good (the VM vanished) as failed, never swallowed', async () => {
    fresh().addVm('db');
    stub.faults.createImage = () => 'fail-permanently';
    stub.faults.ensureRunning = () => {
      stub.vms.get('db')!.state = 'missing';
      return undefined;
    };
    const { vms } = await weekly();
    assert.equal(vms[0]!.status, 'failed');
    assert.equal(vms[0]!.runningAtEnd, false);
    assert.match(vms[0]!.reason!, /could not restart: db no longer exists/);
    assert.deepEqual(names(vms[0]!), [
      'end remote copies and remove partial images',
      'start the VM again (failed)',
      'release the VM lock',
    ]);
  });

  it('abandons imaging past the downtime budget and starts the VM again', async () => {
    // 63 s budget, 60 s kept for the boot: 3 s for the copy, which hangs.
    fresh({ defaultPolicy: { ...SETTINGS.defaultPolicy, maxDowntimeSeconds: 63 } }).addVm('db');
    stub.faults.createImage = () => 'hang';
    const { vms } = await weekly();
    assert.equal(vms[0]!.status, 'failed');
    assert.equal(vms[0]!.failedStep, 'imaging');
    assert.match(vms[0]!.reason!, /downtime budget of 63\.0 s reached while imaging/);
    assert.equal(stateOf(), 'running');
    assert.equal(stub.partials.size, 0);
  });

  // Cancel (and abort) while each step is under way: the VM runs again before the run ends.
  for (const [activity, step] of [
    ['lockVm', 'locking'],
    ['preflightVm', 'preflight'],
    ['awaitShutOff', 'stopping'],
    ['createImage', 'imaging'],
    ['ensureRunning', 'starting'],
    ['verifyImage', 'verifying'],
    ['pullImage', 'pulling'],
  ] as const) {
    it(`cancel during ${step}: aborted, the VM runs, nothing left behind`, async () => {
      fresh().addVm('db');
      let hung = false;
      stub.faults[activity] = (): Fault => {
        if (hung) return undefined; // the restart compensation of ensureRunning itself must get through
        hung = true;
        return 'hang';
      };
      const handle = await start();
      await until(() => hung, `${activity} to start`);
      await handle.cancel();
      await assert.rejects(handle.result(), WorkflowFailedError);
      if (activity === 'createImage') await captureHistory(handle, 'weekly-cancelled');
      const vm = reported().vms[0]!;
      assert.equal(vm.status, 'aborted');
      assert.equal(vm.failedStep, step);
      assert.equal(stateOf(), 'running');
      assert.equal(stub.partials.size, 0);
      assert.equal(stub.locks.size, 0);
      assert.equal(stub.heldDown.size, 0);
    });
  }

  it('answers an abort during imaging once the VM runs again', async () => {
    fresh().addVm('db');
    stub.faults.createImage = () => 'hang';
    const handle = await start();
    await until(() => stub.calls.includes('createImage db'), 'imaging');
    const answer = await handle.executeUpdate(abortUpdate, { args: ['maintenance'] });
    assert.deepEqual(answer.running, ['db']);
    assert.equal(stateOf(), 'running');
    const summary = (await handle.result()) as WeeklySummary;
    assert.equal(summary.vms[0]!.status, 'aborted');
    assert.equal(summary.aborted, 'maintenance');
    await captureHistory(handle, 'weekly-aborted');
  });

  it('cycles a VM named twice only once', async () => {
    fresh().addVm('db');
    const { vms } = await weekly(['db', 'db']);
    assert.equal(vms.length, 1);
    assert.equal(stub.calls.filter((c) => c === 'createImage db').length, 1);
  });

  it('goes on with the other VMs when one fails; the run is not ok', async () => {
    fresh().addVm('db').addVm('web');
    stub.faults.createImage = (_attempt, vm) => (vm === 'db' ? 'fail-permanently' : undefined);
    const { vms, ok } = await weekly(['db', 'web']);
    assert.equal(ok, false);
    assert.deepEqual(
      vms.map((v) => `${v.vm} ${v.status}`),
      ['db failed', 'web backed-up'],
    );
    assert.equal(stateOf('db'), 'running');
    assert.equal(stateOf('web'), 'running');
  });

  const OVERLAY = {
    shutdownTimeoutSeconds: 30,
    forceOff: false,
    maxDowntimeSeconds: 3600,
    imaging: 'overlay' as const,
  };

  it('imaging: overlay: the VM runs again before its disks are imaged; the overlays are merged before the set is recorded', async () => {
    fresh({ defaultPolicy: OVERLAY }).addVm('db');
    const { vms, ok } = await weekly(['db'], 'weekly-overlay-ok');
    assert.equal(ok, true, JSON.stringify(vms[0]));
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
    assert.deepEqual(stub.onOverlays, new Set());
    assert.deepEqual(names(vms[0]!), ['release the VM lock']);
  });

  for (const failing of ['createOverlays', 'createFrozenImage', 'mergeOverlays'] as const) {
    it(`imaging: overlay: ${failing} failing for good: the VM runs, its overlays are merged back`, async () => {
      fresh({ defaultPolicy: OVERLAY }).addVm('db');
      // The merge fails during the cycle only: the compensation's own merge succeeds.
      let merges = 0;
      stub.faults[failing] = () => (failing !== 'mergeOverlays' || ++merges === 2 ? 'fail-permanently' : undefined);
      const { vms } = await weekly(['db'], failing === 'mergeOverlays' ? 'weekly-overlay-merge-failed' : undefined);
      assert.equal(vms[0]!.status, 'failed');
      assert.equal(stateOf('db'), 'running');
      assert.deepEqual(stub.onOverlays, new Set(), 'no overlay left');
      assert.ok(names(vms[0]!).includes('merge the overlays back'), names(vms[0]!).join(', '));
    });
  }

  it('imaging: overlay: cancel during imaging: aborted, the VM runs, its overlays merged', async () => {
    fresh({ defaultPolicy: OVERLAY }).addVm('db');
    stub.faults.createFrozenImage = () => 'hang';
    const handle = await start();
    await until(() => stub.calls.includes('createFrozenImage db'), 'imaging');
    await handle.cancel();
    await handle.result().catch(() => undefined);
    assert.equal(reported().vms[0]!.status, 'aborted');
    assert.equal(stateOf('db'), 'running');
    assert.deepEqual(stub.onOverlays, new Set());
  });

  it('imaging: overlay: an abort while the frozen copy is taken: answered once the VM runs, its overlays merged', async () => {
    fresh({ defaultPolicy: OVERLAY }).addVm('db');
    stub.faults.createFrozenImage = () => 'hang';
    const handle = await start();
    await until(() => stub.calls.includes('createFrozenImage db'), 'the frozen copy');
    const answer = await handle.executeUpdate(abortUpdate, { args: ['maintenance'] });
    assert.deepEqual(answer.running, ['db']);
    const summary = (await handle.result()) as WeeklySummary;
    await captureHistory(handle, 'weekly-overlay-aborted');
    assert.equal(summary.vms[0]!.status, 'aborted');
    assert.equal(summary.aborted, 'maintenance');
    assert.equal(stateOf('db'), 'running');
    assert.deepEqual(stub.onOverlays, new Set());
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
    await captureHistory(handle, 'guardian');
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
