import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { RemoteActivities, StoreActivities } from '../../activities';
import type { Preflight, PreparedDisk } from '../../domain/vm-contracts';
import type { HeldDownRecord, RunRef } from '../../adapters/hypervisor/vm-records';
import type { OverlaysLeft } from '../../domain/guardian';
import type { OffsiteFreshness, OffsiteOutcome } from '../../domain/offsite';
import type { VmImage, WeeklySettings } from '../../domain/weekly-summary';
import { RESTORE_STORE_ACTIVITIES } from '../../activities/restore';

export type StubState = 'running' | 'shut-off' | 'paused' | 'missing';

export interface StubVm {
  state: StubState;
  /** The guest powers off on the ACPI request (false: it ignores it). */
  acpi: boolean;
  /** Every state change, for assertions. */
  history: StubState[];
}

/** An activity call that fails, hangs or succeeds, decided per call by the test. */
export type Fault = 'fail' | 'fail-permanently' | 'hang' | undefined;

const DISK: PreparedDisk = {
  target: 'vda',
  type: 'file',
  source: '/vms/disk.qcow2',
  format: 'qcow2',
  virtualSize: 1 << 30,
  allocatedBytes: 1 << 20,
  imageFormat: 'qcow2',
};

/**
 * An in-memory hypervisor and store behind the activities' real names and types: what the VM saga sees of
 * libvirt (power states, held-down records, locks), with faults a test switches on per activity.
 */
export class StubHypervisor {
  readonly vms = new Map<string, StubVm>();
  readonly heldDown = new Map<string, HeldDownRecord>();
  readonly locks = new Map<string, RunRef>();
  readonly calls: string[] = [];
  readonly alerts: string[][] = [];
  /** What each overlays-merged alert of the guardian said. */
  readonly overlayAlerts: OverlaysLeft[][] = [];
  /** Sets that have partial images or running copies (discardPartials clears them). */
  readonly partials = new Set<string>();
  /** VMs running (or defined) on overlays (imaging: overlay). */
  readonly onOverlays = new Set<string>();
  /** faults[activity] is consulted on each call with the attempt number. */
  faults: Record<string, (attempt: number, vm?: string) => Fault> = {};
  preflightReason: Record<string, string> = {};
  closedRuns = new Set<string>();
  /** Weekly runs that were under way before the one under test. */
  earlierRuns: string[] = [];
  /** Set: the hypervisor does not answer at a run's start (why). */
  unreachable?: string;
  /** Each activity's start-to-close timeout, as the workflow set it. */
  readonly timeouts: Record<string, number> = {};
  readonly awaitedSeconds: number[] = [];
  /** Off-site repositories (none by default), each a copy that returns an outcome or throws, per attempt. */
  offsite: Record<string, (attempt: number) => Promise<OffsiteOutcome>> = {};
  /** What the watchdog's look at the off-site repositories finds. */
  offsiteFreshness: OffsiteFreshness[] = [];

  constructor(readonly settings: WeeklySettings) {}

  addVm(name: string, state: StubState = 'running', acpi = true): this {
    this.vms.set(name, { state, acpi, history: [state] });
    return this;
  }

  private vm(name: string): StubVm {
    const vm = this.vms.get(name);
    if (!vm || vm.state === 'missing') throw ApplicationFailure.nonRetryable(`${name} no longer exists`, 'VmMissing');
    return vm;
  }

  private setState(name: string, state: StubState) {
    const vm = this.vm(name);
    vm.state = state;
    vm.history.push(state);
  }

  /** Applies the fault the test set for this activity: throws, or blocks (heartbeating) until cancelled. */
  private async fault(activity: string, vm?: string): Promise<void> {
    const ctx = Context.current();
    this.calls.push(`${activity}${vm ? ` ${vm}` : ''}`);
    this.timeouts[activity] = ctx.info.startToCloseTimeoutMs;
    const fault = this.faults[activity]?.(ctx.info.attempt, vm);
    if (fault === 'fail') throw ApplicationFailure.retryable(`${activity} failed (injected)`);
    if (fault === 'fail-permanently') throw ApplicationFailure.nonRetryable(`${activity} failed for good (injected)`);
    if (fault === 'hang') {
      for (;;) {
        ctx.heartbeat();
        await ctx.sleep(100); // throws once the activity is cancelled
      }
    }
  }

  private run(): RunRef {
    const { workflowId, runId } = Context.current().info.workflowExecution!;
    return { workflowId, runId };
  }

  /** The activities the workflows call, on their queues, typed as the real ones. */
  activities(): { remote: Partial<RemoteActivities>; store: StoreActivities } {
    const remote: Partial<RemoteActivities> = {
      registeredSearchAttributes: async () => [],
      openRunsBefore: async () => this.earlierRuns,
      sendReport: async (request) => {
        this.calls.push(`sendReport ${request.job}`);
        return { to: 'outbox', path: '/dev/null', subject: 'stub' } as never;
      },
      // One hypervisor, served on the queue the test's worker polls.
      listHypervisors: async () => [{ name: 'stub', taskQueue: Context.current().info.taskQueue }],
      checkHypervisor: async () => {
        await this.fault('checkHypervisor');
        return this.unreachable ? { ok: false, reason: this.unreachable } : { ok: true };
      },
      getWeeklySettings: async () => this.settings,
      getOffsiteSettings: async () => ({
        repositories: Object.keys(this.offsite),
        storeTaskQueue: this.settings.storeTaskQueue,
        heartbeatTimeoutSeconds: 10,
      }),
      resolveVms: async (requested) => (requested?.length ? requested : [...this.vms.keys()]),
      lockVm: async (vm) => {
        await this.fault('lockVm', vm);
        const holder = this.locks.get(vm);
        const me = this.run();
        if (holder && holder.runId !== me.runId && !this.closedRuns.has(holder.runId))
          return { acquired: false, reason: `left to ${holder.workflowId}: that run holds this VM` };
        this.locks.set(vm, me);
        return holder && holder.runId !== me.runId
          ? { acquired: true, tookOverFrom: holder.workflowId }
          : { acquired: true };
      },
      unlockVm: async (vm) => {
        await this.fault('unlockVm', vm);
        if (this.locks.get(vm)?.runId === this.run().runId) this.locks.delete(vm);
      },
      preflightVm: async (vm) => {
        await this.fault('preflightVm', vm);
        const state = this.vms.get(vm)?.state ?? 'missing';
        const base: Preflight = {
          ok: true,
          state,
          detail: state,
          disks: [DISK],
          requiredBytes: 1,
          freeBytes: 10,
          deleted: [],
        };
        const record = this.heldDown.get(vm);
        if (record && state === 'shut-off') base.heldDown = record;
        if (state === 'missing') return { ...base, ok: false, disks: [], reason: 'no such VM on the hypervisor' };
        if (state === 'paused') return { ...base, ok: false, reason: 'VM is paused; left as found' };
        const reason = this.preflightReason[vm];
        return reason ? { ...base, ok: false, reason } : base;
      },
      requestShutdown: async (vm, budgetSeconds) => {
        this.heldDown.set(vm, { vm, owner: this.run(), since: new Date().toISOString(), budgetSeconds });
        await this.fault('requestShutdown', vm);
        if (this.vm(vm).acpi) this.setState(vm, 'shut-off');
      },
      awaitShutOff: async (vm, timeoutSeconds) => {
        this.awaitedSeconds.push(timeoutSeconds);
        await this.fault('awaitShutOff', vm);
        return this.vm(vm).state === 'shut-off' ? 'shut-off' : 'timeout';
      },
      forceOff: async (vm) => {
        await this.fault('forceOff', vm);
        this.setState(vm, 'shut-off');
      },
      createImage: async (vm, stamp) => {
        this.partials.add(`${vm}/${stamp}`);
        if (this.vm(vm).state !== 'shut-off') throw ApplicationFailure.nonRetryable(`${vm} is not shut off`);
        await this.fault('createImage', vm);
        this.partials.delete(`${vm}/${stamp}`);
        return `/img/${vm}/${stamp}/vda.qcow2`;
      },
      verifyImage: async (vm, stamp, disk) => {
        await this.fault('verifyImage', vm);
        return {
          disk: disk.target,
          path: `/img/${vm}/${stamp}/vda.qcow2`,
          format: 'qcow2',
          bytes: 1 << 20,
          virtualSize: disk.virtualSize,
          sha256: 'a'.repeat(64),
        };
      },
      recordVerifiedSet: async (vm) => {
        await this.fault('recordVerifiedSet', vm);
        return '<domain/>';
      },
      ensureRunning: async (vm) => {
        await this.fault('ensureRunning', vm);
        const state = this.vm(vm).state;
        if (state !== 'running') this.setState(vm, 'running');
        this.heldDown.delete(vm);
        return { started: state !== 'running' };
      },
      discardPartials: async (vm, stamp) => {
        await this.fault('discardPartials', vm);
        this.partials.delete(`${vm}/${stamp}`);
      },
      overlayPreflight: async (vm) => {
        await this.fault('overlayPreflight', vm);
        return { ok: true, filesystems: [] };
      },
      createOverlays: async (vm) => {
        await this.fault('createOverlays', vm);
        if (this.vm(vm).state !== 'shut-off') throw ApplicationFailure.nonRetryable(`${vm} is not shut off`);
        this.onOverlays.add(vm);
        return [];
      },
      createFrozenImage: async (vm, stamp) => {
        this.partials.add(`${vm}/${stamp}`);
        if (!this.onOverlays.has(vm)) throw ApplicationFailure.nonRetryable(`${vm} is not on overlays`);
        await this.fault('createFrozenImage', vm);
        this.partials.delete(`${vm}/${stamp}`);
        return `/img/${vm}/${stamp}/vda.qcow2`;
      },
      mergeOverlays: async (vm) => {
        await this.fault('mergeOverlays', vm);
        const merged = this.onOverlays.delete(vm) ? ['vda'] : [];
        return { merged, removed: [], resumedFromIoError: false };
      },
      findVmsOnOverlays: async () => [...this.onOverlays],
      endVmCopies: async (vm) => {
        this.calls.push(`endVmCopies ${vm}`);
      },
      applyRetention: async (vm) => {
        await this.fault('applyRetention', vm);
        return { deleted: [], freeBytes: 10 };
      },
      listHeldDown: async () =>
        [...this.heldDown.values()].map((r) => ({
          ...r,
          runClosed: this.closedRuns.has(r.owner.runId),
          downSeconds: (Date.now() - Date.parse(r.since)) / 1000,
        })),
      sendHeldDownAlert: async (putBack) => {
        this.alerts.push(putBack.map((p) => p.vm));
        return { to: 'outbox', path: '/dev/null' } as never;
      },
      sendOverlaysMergedAlert: async (left) => {
        this.overlayAlerts.push(left);
        return { to: 'outbox', path: '/dev/null' } as never;
      },
    };
    const store: StoreActivities = {
      backupSupimDay: async () => {
        throw ApplicationFailure.nonRetryable('not in these tests');
      },
      storeSupimDayInRestic: async () => {
        throw ApplicationFailure.nonRetryable('not in these tests');
      },
      checkOffsiteFreshness: async () => {
        this.calls.push('checkOffsiteFreshness');
        return this.offsiteFreshness;
      },
      copyToOffsite: async (name, request) => {
        this.calls.push(`copyToOffsite ${name} ${request.tagGroups.map((g) => g.join('+')).join(' ')}`);
        const copy = this.offsite[name];
        if (!copy) throw ApplicationFailure.nonRetryable(`no off-site repository ${name} in this stub`);
        return copy(Context.current().info.attempt);
      },
      storePreflight: async (vm) => {
        await this.fault('storePreflight', vm);
        return { ok: true, freeBytes: 10, requiredBytes: 1, deleted: [] };
      },
      storeFrozenDisk: async (vm, _stamp, disk, from) => {
        await this.fault('storeFrozenDisk', vm);
        if (from === 'shut-off' && this.vm(vm).state !== 'shut-off')
          throw ApplicationFailure.nonRetryable(`${vm} is not shut off`);
        const [bytes, sha256] = [disk.virtualSize, 'b'.repeat(64)];
        const image = {
          disk: disk.target,
          path: `restic:${vm}/${disk.target}.raw`,
          format: 'raw' as const,
          bytes,
          virtualSize: bytes,
          sha256,
        };
        return { ...image, snapshot: 'c'.repeat(64), dataAdded: bytes };
      },
      recordResticSet: async (vm) => {
        await this.fault('recordResticSet', vm);
        return `restic record of ${vm}`;
      },
      discardResticPartials: async (vm) => {
        await this.fault('discardResticPartials', vm);
      },
      pullImage: async (vm, _stamp, image: VmImage) => {
        await this.fault('pullImage', vm);
        return { ...image, path: `/store/${vm}/${image.disk}` };
      },
      recordStoredSet: async (vm) => {
        await this.fault('recordStoredSet', vm);
        return `/store/${vm}/manifest.json`;
      },
      applyStoreRetention: async (vm) => {
        await this.fault('applyStoreRetention', vm);
        return { deleted: [], freeBytes: 10 };
      },
      ...notInTheseTests(...RESTORE_STORE_ACTIVITIES),
    };
    return { remote, store };
  }
}

/** Restore activities: the saga tests never call them. */
function notInTheseTests<K extends string>(...names: K[]): Record<K, () => Promise<never>> {
  const fail = async (): Promise<never> => {
    throw ApplicationFailure.nonRetryable('not in these tests');
  };
  return Object.fromEntries(names.map((n) => [n, fail])) as Record<K, () => Promise<never>>;
}
