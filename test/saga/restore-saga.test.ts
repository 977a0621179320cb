/**
 * The exit paths of `restore vm --replace` on the time-skipping test server, with stub activities that model
 * one VM and its disk files: whatever fails, the original disk is back under its name and the VM is in the
 * state it was found in. The real-libvirt suite (test/vm/restore.test.ts) is the end-to-end proof.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import type { RestorePlan } from '../../domain/restore-plan';
import type { ManifestImage } from '../../domain/image-set';
import type { RestoreVmRequest, RestoreVmResult } from '../../domain/restore';
import { TEMPORAL_TEST_SERVER } from '../../scripts/sandbox/paths';
import { abortUpdate } from '../../workflows/definitions';
import { WORKFLOW_BUNDLE } from '../../worker/create-worker';
import { quietWorkerLogs } from '../helpers/temporal';
import { captureHistory } from '../helpers/history-capture';

const TASK_QUEUE = 'restore-saga';
const STORE_QUEUE = 'restore-saga-store';
const IMAGE: ManifestImage = {
  disk: 'vda',
  file: 'vda.qcow2',
  format: 'qcow2',
  bytes: 10,
  virtualSize: 10,
  sha256: 'a'.repeat(64),
};

/** One VM with one disk file; the files on the hypervisor by name and content. */
class StubVm {
  state: 'running' | 'shut-off' = 'running';
  files = new Map<string, string>([['/vm/db.qcow2', 'original']]);
  calls: string[] = [];
  /** The store activities' arguments, in call order: [name, ...args]. */
  storeArgs: unknown[][] = [];
  failOn = new Map<string, number>();
  /** Holds the push until released (to abort mid-push). */
  pushGate?: Promise<void>;

  /** Told of each call (before its fault applies). */
  onCall?: (name: string) => void;

  private fault(name: string): void {
    this.calls.push(name);
    this.onCall?.(name);
    const left = this.failOn.get(name);
    if (left === undefined || left <= 0) return;
    this.failOn.set(name, left - 1);
    throw ApplicationFailure.nonRetryable(`${name} failed (injected)`);
  }

  activities() {
    const plan: RestorePlan = {
      domain: 'db',
      wasRunning: this.state === 'running',
      shutdownTimeoutSeconds: 30,
      targets: [
        {
          disk: 'vda',
          format: 'qcow2',
          pushPath: '/vm/db.qcow2.restored-S',
          finalPath: '/vm/db.qcow2',
          keepAs: '/vm/db.qcow2.before-restore-R',
        },
      ],
    };
    const remote = {
      getRestoreSettings: async () => ({
        storeTaskQueue: STORE_QUEUE,
        heartbeatTimeoutSeconds: 10,
        bootTimeoutSeconds: 30,
      }),
      planRestore: async (mode: string, _vm: string, _set: unknown, options: { stop?: boolean; newName?: string }) => {
        this.fault('planRestore');
        if (mode === 'as') {
          const pushed = { disk: 'vda', format: 'qcow2', pushPath: '/vm/db.qcow2.restored-S' };
          return { ...plan, domain: options.newName!, wasRunning: false, targets: [pushed] };
        }
        if (this.state === 'running' && !options.stop) throw ApplicationFailure.nonRetryable('needs it shut off');
        return { ...plan, wasRunning: this.state === 'running' };
      },
      requestShutdown: async () => {
        this.fault('requestShutdown');
        this.state = 'shut-off';
      },
      awaitShutOff: async () => 'shut-off' as const,
      swapInRestoredDisks: async () => {
        this.fault('swapInRestoredDisks');
        this.files.set('/vm/db.qcow2.before-restore-R', this.files.get('/vm/db.qcow2')!);
        this.files.delete('/vm/db.qcow2');
        this.fault('swapInRestoredDisks:after-keep');
        this.files.set('/vm/db.qcow2', this.files.get('/vm/db.qcow2.restored-S')!);
        this.files.delete('/vm/db.qcow2.restored-S');
        return ['/vm/db.qcow2.before-restore-R'];
      },
      ensureRunning: async () => {
        this.fault(`ensureRunning:${this.files.get('/vm/db.qcow2')}`);
        this.state = 'running';
        return { started: true };
      },
      putOriginalDisksBack: async () => {
        this.fault('putOriginalDisksBack');
        this.state = 'shut-off';
        const kept = this.files.get('/vm/db.qcow2.before-restore-R');
        if (kept !== undefined) {
          this.files.set('/vm/db.qcow2', kept);
          this.files.delete('/vm/db.qcow2.before-restore-R');
        }
      },
      discardPushed: async () => {
        this.fault('discardPushed');
        this.files.delete('/vm/db.qcow2.restored-S');
      },
      lockVm: async () => {
        this.fault('lockVm');
        return { acquired: true };
      },
      unlockVm: async () => {
        this.fault('unlockVm');
      },
      defineRestoredVm: async () => {
        this.fault('defineRestoredVm');
        this.files.set('/vm/db-restored.qcow2', this.files.get('/vm/db.qcow2.restored-S')!);
        this.files.delete('/vm/db.qcow2.restored-S');
        return [];
      },
      restoredDomainState: async () => this.state.replace('-', ' '),
      sendRestoreReport: async () => ({ subject: 'x', where: 'nowhere' }),
    };
    const store = {
      readStoredSet: async (...args: unknown[]) => {
        this.storeArgs.push(['readStoredSet', ...args]);
        return { vm: 'db', stamp: '20261127T000000Z', images: [IMAGE], domainXml: '<domain/>' };
      },
      pushImage: async (...args: unknown[]) => {
        this.storeArgs.push(['pushImage', ...args]);
        this.fault('pushImage');
        await this.pushGate;
        this.files.set('/vm/db.qcow2.restored-S', 'restored');
        return {
          disk: 'vda',
          path: '/vm/db.qcow2.restored-S',
          format: 'qcow2',
          bytes: 10,
          sha256: IMAGE.sha256,
          resumedAt: 0,
        };
      },
    };
    return { remote, store };
  }
}

describe('restore vm --replace: every exit path puts the original disk back', () => {
  let env: TestWorkflowEnvironment;
  let vm: StubVm;
  let workers: Worker[];
  let running: Promise<unknown>;
  let seq = 0;

  before(async () => {
    quietWorkerLogs();
    env = await TestWorkflowEnvironment.createTimeSkipping({
      server: { executable: { type: 'existing-path', path: TEMPORAL_TEST_SERVER } },
    });
    const delegate = (side: 'remote' | 'store') =>
      Object.fromEntries(
        Object.keys(new StubVm().activities()[side]).map((name) => [
          name,
          (...args: unknown[]) =>
            (vm.activities()[side] as Record<string, (...a: unknown[]) => unknown>)[name]!(...args),
        ]),
      );
    workers = await Promise.all([
      Worker.create({
        connection: env.nativeConnection,
        taskQueue: TASK_QUEUE,
        workflowBundle: { codePath: WORKFLOW_BUNDLE },
        activities: delegate('remote'),
      }),
      Worker.create({ connection: env.nativeConnection, taskQueue: STORE_QUEUE, activities: delegate('store') }),
    ]);
    running = Promise.all(workers.map((w) => w.run()));
  });
  after(async () => {
    for (const w of workers) w.shutdown();
    await running;
    await env.teardown();
  });

  const start = (request: Partial<RestoreVmRequest> = {}) =>
    env.client.workflow.start('restoreVm', {
      taskQueue: TASK_QUEUE,
      workflowId: `restore-saga-${++seq}`,
      args: [{ vm: 'db', mode: 'replace', stamp: '20261127T000000Z', stop: true, ...request }],
    });
  /** Runs a restore to its end; `history` names it in test/replay when histories are captured. */
  const restore = async (request: Partial<RestoreVmRequest> = {}, history?: string) => {
    const handle = await start(request);
    const result = (await handle.result()) as RestoreVmResult;
    if (history) await captureHistory(handle, history);
    return result;
  };

  it('restores a VM as a new domain beside the original: pushed, defined, the original untouched', async () => {
    vm = new StubVm();
    const result = await restore({ mode: 'as', newName: 'db-restored', stop: undefined }, 'restore-vm-as');
    assert.equal(result.ok, true, JSON.stringify(result));
    assert.equal(vm.files.get('/vm/db.qcow2'), 'original');
    assert.equal(vm.files.get('/vm/db-restored.qcow2'), 'restored');
    assert.ok(vm.calls.includes('defineRestoredVm'));
    assert.ok(!vm.calls.includes('lockVm'), 'a restore beside the VM does not lock it');
    assert.ok(!vm.calls.includes('requestShutdown'));
    assert.equal(vm.state, 'running');
  });

  it('--from offsite:far: the set read and pushed from that off-site repository (its name only); else no extra argument', async () => {
    vm = new StubVm();
    const result = await restore({ mode: 'as', newName: 'db-restored', stop: undefined, offsite: 'far' });
    assert.equal(result.ok, true, JSON.stringify(result));
    assert.deepEqual(
      vm.storeArgs.map((a) => [a[0], a.at(-1)]),
      [
        ['readStoredSet', 'far'],
        ['pushImage', 'far'],
      ],
    );
    assert.deepEqual(vm.storeArgs[0], ['readStoredSet', 'db', '20261127T000000Z', 'far']);
    vm = new StubVm();
    await restore({ mode: 'as', newName: 'db-restored', stop: undefined });
    assert.deepEqual(
      vm.storeArgs.map((a) => a.length),
      [3, 5],
      'from the store: the activities get the arguments they always had',
    );
  });

  it('replaces the disk of a running VM: stopped, swapped, started on the restored disk', async () => {
    vm = new StubVm();
    const result = await restore({}, 'restore-vm-replace');
    assert.equal(result.ok, true, JSON.stringify(result));
    assert.equal(vm.files.get('/vm/db.qcow2'), 'restored');
    assert.equal(vm.files.get('/vm/db.qcow2.before-restore-R'), 'original');
    assert.equal(vm.state, 'running');
    assert.deepEqual(result.keptAs, ['/vm/db.qcow2.before-restore-R']);
    assert.equal(vm.calls.at(-1), 'unlockVm', 'the VM lock is released at the end');
  });

  it('a VM that will not start on the restored disk: original disk back, VM running on it', async () => {
    vm = new StubVm();
    vm.failOn.set('ensureRunning:restored', 1);
    const result = await restore({}, 'restore-vm-put-back');
    assert.equal(result.ok, false);
    assert.equal(result.failedStep, 'starting');
    assert.equal(result.putBack, true);
    assert.equal(vm.files.get('/vm/db.qcow2'), 'original');
    assert.ok(!vm.files.has('/vm/db.qcow2.before-restore-R'));
    assert.equal(vm.state, 'running');
    assert.ok(vm.calls.includes('ensureRunning:original'));
  });

  it('a put-back that fails for good is recorded, and the restart, the discard and the unlock still run', async () => {
    vm = new StubVm();
    vm.failOn.set('ensureRunning:restored', 1);
    vm.failOn.set('putOriginalDisksBack', 1);
    const result = await restore();
    assert.equal(result.ok, false);
    assert.equal(result.failedStep, 'starting');
    assert.notEqual(result.putBack, true, 'the originals are not claimed to be back');
    assert.deepEqual(result.compensations, [
      { name: 'put the original disks back', ok: false, error: 'putOriginalDisksBack failed (injected)' },
      { name: 'start the VM again', ok: true },
      { name: 'remove the pushed images', ok: true },
      { name: 'release the VM lock', ok: true },
    ]);
    const after = vm.calls.slice(vm.calls.indexOf('putOriginalDisksBack'));
    assert.deepEqual(after, ['putOriginalDisksBack', 'ensureRunning:restored', 'discardPushed', 'unlockVm']);
    assert.equal(vm.state, 'running');
  });

  it('an ok replace records only the lock it released', async () => {
    vm = new StubVm();
    const result = await restore();
    assert.equal(result.ok, true, JSON.stringify(result));
    assert.deepEqual(result.compensations, [{ name: 'release the VM lock', ok: true }]);
  });

  it('a swap that fails half-way (old disk already moved aside): put back, VM running', async () => {
    vm = new StubVm();
    vm.failOn.set('swapInRestoredDisks:after-keep', 1);
    const result = await restore();
    assert.equal(result.ok, false);
    assert.equal(result.failedStep, 'swapping');
    assert.equal(vm.files.get('/vm/db.qcow2'), 'original');
    assert.equal(vm.state, 'running');
    assert.ok(!vm.files.has('/vm/db.qcow2.restored-S'), 'the pushed copy is discarded');
  });

  it('an abort during the push: nothing swapped, the VM never stopped, the pushed copy discarded', async () => {
    vm = new StubVm();
    let release!: () => void;
    vm.pushGate = new Promise((resolve) => (release = resolve));
    const handle = await start();
    for (let i = 0; i < 200 && !vm.calls.includes('pushImage'); i++) await new Promise((r) => setTimeout(r, 25));
    // The push ends only once the workflow has moved on to discarding it (a cancel it did not wait for):
    // released earlier, its completion could race the cancel request on the test server.
    vm.onCall = (name) => name === 'discardPushed' && release();
    const answer = handle.executeUpdate(abortUpdate, { args: ['wrong set'] });
    assert.equal((await answer).reason, 'wrong set');
    const result = (await handle.result()) as RestoreVmResult;
    await captureHistory(handle, 'restore-vm-aborted');
    assert.equal(result.ok, false);
    assert.equal(result.aborted, 'wrong set');
    assert.ok(!vm.calls.includes('requestShutdown'));
    assert.ok(!vm.calls.includes('swapInRestoredDisks'));
    assert.ok(vm.calls.includes('discardPushed'));
    assert.equal(vm.files.get('/vm/db.qcow2'), 'original');
    assert.equal(vm.state, 'running');
  });

  it('refuses a running VM without --stop before pushing anything', async () => {
    vm = new StubVm();
    const result = await restore({ stop: false });
    assert.equal(result.ok, false);
    assert.match(result.reason ?? '', /needs it shut off/);
    assert.deepEqual(vm.calls, ['lockVm', 'planRestore', 'unlockVm']);
  });
});
