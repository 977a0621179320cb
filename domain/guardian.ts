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

export interface GuardianSummary {
  checked: number;
  putBack: VmPutBack[];
  ok: boolean;
}

/** Seconds past a VM's downtime budget before the guardian steps in while its run is still open. */
export const GUARDIAN_GRACE_SECONDS = 300;
