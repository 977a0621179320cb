/**
 * What the VM cycle needs from a hypervisor. Small on purpose: a Proxmox (`qm`), Xen (`xl`) or VirtualBox
 * driver implements these six calls and the workflows do not change.
 */
export type VmPowerState = 'running' | 'shut-off' | 'paused' | 'transitional' | 'missing';

export interface VmState {
  state: VmPowerState;
  /** The hypervisor's own words, e.g. "shut off (shutdown)". */
  detail: string;
}

export interface VmDisk {
  /** Device name inside the VM, e.g. vda: names the image file. */
  target: string;
  /** Path of the disk file on the hypervisor. */
  source: string;
  /** qcow2, raw, ... */
  format: string;
}

export interface HypervisorDriver {
  listVms(): Promise<{ name: string; state: VmPowerState }[]>;
  state(vm: string): Promise<VmState>;
  /** File-backed disks only (CD-ROMs and network disks are not imaged). */
  disks(vm: string): Promise<VmDisk[]>;
  /** Asks the guest to shut down (ACPI); returns at once. Fine on a VM that is already off. */
  requestShutdown(vm: string): Promise<void>;
  /** Fine on a VM that is already running. */
  start(vm: string): Promise<void>;
  /** Pulls the plug. Only where the operator allowed it for this VM. Fine on a VM that is already off. */
  forceOff(vm: string): Promise<void>;
}
