import { patched } from '@temporalio/workflow';
import type { WeeklySummary } from '../domain/weekly-summary';
import type { WeeklyVmInput } from './definitions';
import { weeklyByHypervisor } from './weekly-by-hypervisor';
import { weeklyOneHost } from './weekly-one-host';

export type { WeeklyVmInput };

/**
 * Weekly VM images: one child run per hypervisor (weekly-host.ts), each VM through its cycle there, then one
 * summary and one report grouped by host. No execution timeout. An abort (update) or a cancel puts every
 * stopped VM back before the run ends.
 */
export async function weeklyVmBackup(input: WeeklyVmInput = {}): Promise<WeeklySummary> {
  return patched('hypervisor-children') ? weeklyByHypervisor(input) : weeklyOneHost(input);
}
