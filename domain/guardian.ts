/** A VM the guardian found held down by a run that is gone (or over its budget), and what it did. */
export interface VmPutBack {
  vm: string;
  /** The workflow ID of the run that stopped it. */
  heldBy: string;
  since: string;
  downMs: number;
  why: string;
  running: boolean;
  error?: string;
}

/** A VM the guardian found running on overlays a run left (imaging: overlay), and what it did. */
export interface OverlaysLeft {
  vm: string;
  /** The workflow ID of the run that left them, from the VM's lock (absent: the run had released it). */
  leftBy?: string;
  /** Disks merged back into their original files. */
  merged: string[];
  /** Overlay files deleted. */
  removed: string[];
  error?: string;
}

export interface GuardianSummary {
  checked: number;
  putBack: VmPutBack[];
  ok: boolean;
  /** VMs found running on overlays a run left (imaging: overlay) and merged back. */
  overlaysMerged?: string[];
  /** Hypervisors that did not answer (each with why): their VMs were not checked this time. */
  unreachable?: string[];
}

/** Seconds past a VM's downtime budget before the guardian steps in while its run is still open. */
export const GUARDIAN_GRACE_SECONDS = 300;
