import type { OffsiteOutcome } from './offsite';
/** What one weekly VM run did, per VM. Returned by the workflow, shown by queries, rendered by reports. */
import { getISOWeek, getISOWeekYear } from 'date-fns';

/**
 * The phases of a VM's cycle, each its own name. Results of runs before the cycle had one name per phase
 * carry `preflight`, `imaging`, `merging` and `starting` also for the overlay preflight, the frozen copy,
 * the merge of overlays left over and the start of a VM left off; they still read as such.
 */
export type VmStep =
  | 'pending'
  | 'locking'
  | 'merging-left' // imaging: overlay: overlays an earlier run left are merged before anything else
  | 'preflight'
  | 'starting-left-off' // a VM an earlier run left off, past its downtime budget: started before its cycle
  | 'store-preflight'
  | 'overlay-preflight' // imaging: overlay: room for the overlays' growth, or offline instead
  | 'stopping'
  | 'overlays' // imaging: overlay: qcow2 overlays put on the shut-off VM's disks
  | 'imaging' // imaging: offline: the disks copied while the VM is off
  | 'imaging-frozen' // imaging: overlay: the frozen disks copied while the VM runs on its overlays
  | 'merging' // imaging: overlay: the overlays merged back into the disks while the VM runs
  | 'verifying'
  | 'starting'
  | 'pulling' // copying the verified images to the backup store (the VM is running again)
  | 'storing' // store.engine restic: each disk streamed from the hypervisor into the repository
  | 'recording' // store.engine restic: repository checked, the set's record stored (from then on it counts)
  | 'retention'
  | 'store-retention'
  | 'restarting' // compensation after a failure, an abort or a cancel
  | 'cleaning-up' // compensations: partial images, remote copies, the VM lock
  | 'done';

export type VmStatus =
  | 'backed-up' // imaged, verified, and back in the state it was found in
  | 'skipped' // left untouched (not enough space, shutdown timed out, not found, ...)
  | 'failed' // a step failed; the VM was put back in the state it was found in
  | 'aborted'; // an operator aborted or cancelled the run; the VM was put back

export interface StepTiming {
  step: VmStep;
  startedAt: string;
  ms: number;
}

export interface VmImage {
  disk: string;
  path: string;
  /** Derived from the file name when absent (results of older runs). */
  format?: 'qcow2' | 'raw';
  /** The VM's disk it was taken from (file or block device on the hypervisor). */
  sourcePath?: string;
  bytes: number;
  /** Bytes it occupies on disk (sparse images take less than `bytes`). */
  allocatedBytes?: number;
  virtualSize: number;
  sha256: string;
}

/** store.engine restic: a disk stored in the repository, with its snapshot and the bytes it added there. */
export interface ResticImage extends VmImage {
  snapshot: string;
  dataAdded: number;
}

/** A compensation the cycle ran on its way out, and whether it worked (none is swallowed). */
export interface CompensationRun {
  name: string;
  ok: boolean;
  error?: string;
}

export interface VmResult {
  vm: string;
  /** The hypervisor it runs on (absent in runs before several hypervisors: the only one). */
  hypervisor?: string;
  status: VmStatus;
  reason?: string;
  failedStep?: VmStep;
  /** Power state when the run found it; null if it could not be read (e.g. no such VM). */
  wasRunning: boolean | null;
  /** Confirmed running at the end of its cycle (only checked for VMs that were running). */
  runningAtEnd: boolean | null;
  /** Stop requested -> confirmed running again; only for a VM that actually went off. */
  downtimeMs?: number;
  /** Found off with a held-down record of an earlier run (terminated, crashed): started again by this run. */
  heldDownBy?: string;
  /** What ran on the way out (restart, partials, lock), in order. */
  compensations?: CompensationRun[];
  images: VmImage[];
  /** The same images in the backup store, each hash equal to the hypervisor's. */
  stored: VmImage[];
  steps: StepTiming[];
  imageAreaFreeBefore?: number;
  imageAreaFreeAfter?: number;
  storeFreeBefore?: number;
  /** Size of the VM's previous stored image set, to show the change. */
  previousImageBytes?: number;
  storeFreeAfter?: number;
  /** Image sets removed (image area, or store: prefixed) by retention or to make space. */
  deleted: string[];
  /** Store sets that retention would have removed; store.retention.dryRun kept them. */
  wouldDelete?: string[];
}

export interface VmProgress {
  vm: string;
  hypervisor?: string;
  step: VmStep;
  stepStartedAt?: string;
  steps: StepTiming[];
}

export interface WeeklySummary {
  week: string;
  stamp: string;
  vms: VmResult[];
  /** Every VM imaged and verified, none skipped or failed, every VM that was running is running. */
  ok: boolean;
  aborted?: string;
  /** Another run for the same VMs was already under way (schedule and CLI at once): this one did nothing. */
  alreadyRunning?: string;
  /** Per hypervisor (runs since several hypervisors): its child run and how it went. */
  hosts?: HostOutcome[];
  /** offsite configured: the verified sets' copies to each off-site repository (never part of ok). */
  offsite?: OffsiteOutcome[];
  startedAt: string;
  finishedAt: string;
}

/** One hypervisor's part of a weekly run: its child workflow `vms-<week>-<name>-<stamp>`. */
export interface HostOutcome {
  hypervisor: string;
  workflowId: string;
  /** Not reachable at the start (SSH refused, host key changed, libvirtd gone): its VMs were left untouched. */
  unreachable?: string;
  /** The child run failed as a whole (its VMs' results are lost; each VM it stopped is put back by its saga). */
  error?: string;
  startedAt?: string;
  finishedAt?: string;
}

/** What a hypervisor's child run returns to the weekly run. */
export interface HostSummary {
  hypervisor: string;
  vms: VmResult[];
  unreachable?: string;
  startedAt: string;
  finishedAt: string;
}

/** The parts of the hypervisor config the workflow plans with; nothing secret. */
export interface WeeklySettings {
  vms: 'all-running' | string[];
  concurrency: number;
  keepImages: number;
  /** Whether verified images are pulled into a backup store. */
  store: boolean;
  /** Store activities write to the backup store's disk: they run only on workers of the backup host. */
  storeTaskQueue: string;
  /** store.engine (absent in runs before the restic engine: files). */
  storeEngine?: 'files' | 'restic';
  /** Every VM activity heartbeats: a dead worker's step is retried elsewhere after this long. */
  heartbeatTimeoutSeconds: number;
  /** Per VM: shutdown timeout, whether forcing off is allowed, downtime budget. */
  policy: Record<string, VmPolicy>;
  defaultPolicy: VmPolicy;
  /** A remote copy or check that reads nothing for this long is stopped. */
  stallSeconds: number;
  /** The hypervisor these settings are of, and the task queue of its activities (absent in earlier runs). */
  hypervisor?: string;
  taskQueue?: string;
}

export interface VmPolicy {
  shutdownTimeoutSeconds: number;
  forceOff: boolean;
  maxDowntimeSeconds: number;
  /** offline: down while imaged; overlay: down for shutdown and boot only (absent: offline). */
  imaging?: 'offline' | 'overlay';
  /** offline, store.engine restic: the disks streamed into the repository while the VM is off (absent: false). */
  streamWhileDown?: boolean;
}

export function policyFor(settings: WeeklySettings, vm: string): VmPolicy {
  return settings.policy[vm] ?? settings.defaultPolicy;
}

export function weeklyRunOk(vms: readonly VmResult[]): boolean {
  return vms.every((v) => v.status === 'backed-up' && v.runningAtEnd !== false);
}

/** ISO 8601 week label, e.g. 2026-W48, of a calendar date (YYYY-MM-DD). */
export function isoWeekLabel(isoDate: string): string {
  const [y, m, d] = isoDate.split('-').map(Number) as [number, number, number];
  const date = new Date(y, m - 1, d); // date-fns reads the local calendar date; noon-free: only y/m/d matter
  return `${getISOWeekYear(date)}-W${String(getISOWeek(date)).padStart(2, '0')}`;
}

/** Image-set stamp from an instant: 20261127T083000Z (sorts by time, safe as a folder name). */
export function imageStamp(instant: Date): string {
  return instant
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
}

/**
 * The VMs in the order the operator named them (`vm` or `hypervisor/vm`), whatever order their cycles ended
 * in; the rest after them in `hostOrder` (the config's order of hypervisors), each host's VMs as they came.
 */
export function inRequestOrder(results: VmResult[], requested: string[] = [], hostOrder: string[] = []): VmResult[] {
  const rank = (r: VmResult) => {
    const named = requested.findIndex((entry) => entry === r.vm || entry === `${r.hypervisor}/${r.vm}`);
    if (named >= 0) return named;
    const host = hostOrder.indexOf(r.hypervisor ?? '');
    return requested.length + (host < 0 ? hostOrder.length : host);
  };
  return results
    .map((r, index) => ({ r, index, rank: rank(r) }))
    .sort((a, b) => a.rank - b.rank || a.index - b.index)
    .map(({ r }) => r);
}
