/**
 * What the VM workflows and the hypervisor activities exchange: plain data, importable from workflows. The
 * adapters that produce it import these types from here (data flows down, never back up).
 */

export type VmPowerState = 'running' | 'shut-off' | 'paused' | 'pmsuspended' | 'transitional' | 'missing';

export interface VmDisk {
  /** Device name inside the VM, e.g. vda: names the image file. */
  target: string;
  /** file or block are imaged; anything else (volume, network, …) makes the VM unsupported. */
  type: string;
  /** Path of the disk file or block device on the hypervisor. */
  source: string;
  /** qcow2, raw, ... */
  format: string;
}

export interface DiskInfo {
  virtualSize: number;
  /** Bytes the disk occupies (a block device: its whole size). */
  allocatedBytes: number;
  /** What its image is written as: a block device's raw content becomes a raw (sparse) file. */
  imageFormat: 'qcow2' | 'raw';
}

export type PreparedDisk = VmDisk & DiskInfo;

/** Which workflow run did something: enough to ask Temporal whether that run is still open. */
export interface RunRef {
  workflowId: string;
  runId: string;
}

/**
 * Written on the hypervisor before a VM is asked to stop, removed once it runs again. It outlives the run
 * that wrote it (a terminated run runs no compensation): the guardian and every later run act on it.
 */
export interface HeldDownRecord {
  vm: string;
  owner: RunRef;
  /** When the stop was requested (ISO). */
  since: string;
  /** How long the VM may stay down for its backup. */
  budgetSeconds: number;
}

export interface Preflight {
  ok: boolean;
  reason?: string;
  state: VmPowerState;
  detail: string;
  /** Off, but an earlier run stopped it and never put it back: it counts as running. */
  heldDown?: HeldDownRecord;
  disks: PreparedDisk[];
  requiredBytes: number;
  freeBytes: number;
  /** Image sets removed to make room (only ever older than a newer verified set). */
  deleted: string[];
}
