import { defineQuery, defineUpdate } from '@temporalio/workflow';
import type { VmProgress } from '../domain/weekly-summary';

export interface WeeklyVmInput {
  /**
   * Only these VMs (default: each hypervisor's list, or every running VM). `name` is looked for on every
   * hypervisor, `hypervisor/name` on that one. Each VM is cycled once.
   */
  vms?: string[];
}

export interface WeeklyProgress {
  stamp?: string;
  vms: VmProgress[];
  aborted?: string;
  /** A weekly run over several hypervisors: each one's child run, whose own progress query has its VMs. */
  hosts?: { hypervisor: string; workflowId: string }[];
}

export interface AbortAnswer {
  acknowledged: true;
  reason: string;
  /** VMs that were running at the start and are confirmed running again. */
  running: string[];
}

/** Per VM: the step it is in and how long each step took. `temporal workflow query --type progress`. */
export const progressQuery = defineQuery<WeeklyProgress>('progress');

/**
 * Stops the run: the VM cycles under way put their VMs back (restart), the VMs not started yet are left
 * alone. Answers once every VM is back. `temporal workflow update execute --name abort --input '"why"'`.
 */
export const abortUpdate = defineUpdate<AbortAnswer, [string]>('abort');
