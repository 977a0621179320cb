/**
 * What the VM cycle needs from a hypervisor. Small on purpose: a Proxmox (`qm`), Xen (`xl`) or VirtualBox
 * driver implements these calls and the workflows do not change.
 */
export type VmPowerState = 'running' | 'shut-off' | 'paused' | 'pmsuspended' | 'transitional' | 'missing';

export interface VmState {
  state: VmPowerState;
  /** The hypervisor's own words, e.g. "shut off (shutdown)". */
  detail: string;
}

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

export interface HypervisorDriver {
  listVms(): Promise<{ name: string; state: VmPowerState }[]>;
  state(vm: string): Promise<VmState>;
  /** The VM's disks (CD-ROMs and floppies are not imaged and not listed). */
  disks(vm: string): Promise<VmDisk[]>;
  /** A transient domain vanishes when it shuts down: it must never be stopped for a backup. */
  persistent(vm: string): Promise<boolean>;
  /** The inactive definition without secrets, kept with each image set for restores. */
  definition(vm: string): Promise<string>;
  /** Asks the guest to shut down (ACPI); returns at once. Fine on a VM that is already off. */
  requestShutdown(vm: string): Promise<void>;
  /** Fine on a VM that is already running. */
  start(vm: string): Promise<void>;
  /** A paused VM runs again (a suspended-to-RAM one is woken up). */
  resume(vm: string, from: 'paused' | 'pmsuspended'): Promise<void>;
  /** Pulls the plug. Only where the operator allowed it for this VM. Fine on a VM that is already off. */
  forceOff(vm: string): Promise<void>;
}
