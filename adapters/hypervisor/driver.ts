/**
 * What the VM cycle needs from a hypervisor. Small on purpose: a Proxmox (`qm`), Xen (`xl`) or VirtualBox
 * driver implements these calls and the workflows do not change.
 */
import type { VmDisk, VmPowerState } from '../../domain/vm-contracts';

export type { VmDisk, VmPowerState };

export interface VmState {
  state: VmPowerState;
  /** The hypervisor's own words, e.g. "shut off (shutdown)". */
  detail: string;
}

/** A block job on one disk, with its progress (`cur` of `end`). */
export interface BlockJob {
  type: string;
  cur: number;
  end: number;
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
  /** The domain's identity: a restore's retry recognises its own domain by it. */
  uuid(vm: string): Promise<string>;
  /** Defines (or redefines) a persistent domain from its XML. */
  define(xml: string): Promise<void>;
  /** Starts a transient domain from its XML (gone once destroyed): a boot test's throw-away copy. */
  createTransient(xml: string, signal?: AbortSignal): Promise<void>;
  /** Asks the guest to shut down (ACPI); returns at once. Fine on a VM that is already off. */
  requestShutdown(vm: string): Promise<void>;
  /** Fine on a VM that is already running. */
  start(vm: string): Promise<void>;
  /** A paused VM runs again (a suspended-to-RAM one is woken up). */
  resume(vm: string, from: 'paused' | 'pmsuspended'): Promise<void>;
  /** Pulls the plug. Only where the operator allowed it for this VM. Fine on a VM that is already off. */
  forceOff(vm: string): Promise<void>;
  /** As forceOff, and also fine when there is no such domain (a throw-away one, maybe never created). */
  destroyIfPresent(vm: string): Promise<void>;
}
