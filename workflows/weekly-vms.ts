import { patched } from '@temporalio/workflow';
import type { WeeklySummary } from '../domain/weekly-summary';
import { weeklyByHypervisor } from './weekly-by-hypervisor';
import { weeklyOneHost } from './weekly-one-host';

export interface WeeklyVmInput {
  /**
   * Only these VMs (default: each hypervisor's list, or every running VM). `name` is looked for on every
   * hypervisor, `hypervisor/name` on that one. Each VM is cycled once.
   */
  vms?: string[];
}

/**
 * Weekly VM images: one child run per hypervisor (weekly-host.ts), each VM through its cycle there, then one
 * summary and one report grouped by host. No execution timeout. An abort (update) or a cancel puts every
 * stopped VM back before the run ends.
 */
export async function weeklyVmBackup(input: WeeklyVmInput = {}): Promise<WeeklySummary> {
  return patched('hypervisor-children') ? weeklyByHypervisor(input) : weeklyOneHost(input);
}
