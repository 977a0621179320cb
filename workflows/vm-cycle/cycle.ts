import {
  policyFor,
  type VmPolicy,
  type VmProgress,
  type VmResult,
  type VmStep,
  type WeeklySettings,
} from '../../domain/weekly-summary';
import { Compensations } from '../saga/compensations';
import { Stepper } from '../saga/stepper';
import { Downtime } from './downtime';
import { cycleActivities, type CycleActivities } from './profiles';

/** Everything a phase of one VM's cycle works with; the phases are functions of it. */
export interface Cycle {
  vm: string;
  stamp: string;
  settings: WeeklySettings;
  policy: VmPolicy;
  act: CycleActivities;
  /** Pushed before a phase that can half-succeed, dropped once confirmed, unwound on every way out. */
  undo: Compensations;
  result: VmResult;
  downtime: Downtime;
  step: Stepper<VmStep>;
}

/** A VM left untouched on purpose (the run goes on with the others). */
export class SkipVm extends Error {}

export function newCycle(
  vm: string,
  stamp: string,
  settings: WeeklySettings,
  progress: VmProgress,
  progressChanged: () => void,
): Cycle {
  const policy = policyFor(settings, vm);
  return {
    vm,
    stamp,
    settings,
    policy,
    act: cycleActivities(vm, settings, policy),
    undo: new Compensations(),
    result: {
      vm,
      status: 'failed',
      wasRunning: null,
      runningAtEnd: null,
      images: [],
      stored: [],
      steps: progress.steps,
      deleted: [],
    },
    downtime: new Downtime(policy.maxDowntimeSeconds),
    step: new Stepper<VmStep>(progress, { withStartedAt: true, changed: progressChanged }),
  };
}

/** The VM is confirmed running: its downtime (if it went off) ends here, counted once. */
export function markRunning(c: Cycle): void {
  c.result.runningAtEnd = true;
  if (c.downtime.off) c.result.downtimeMs ??= c.downtime.sinceStop();
}

/** What the store removed, or with retention.dryRun would have removed, goes into the summary. */
export function noteStoreDeletions(c: Cycle, outcome: { deleted: string[]; wouldDelete?: string[] }): void {
  c.result.deleted.push(...outcome.deleted.map((d) => `store: ${d}`));
  if (outcome.wouldDelete?.length) {
    c.result.wouldDelete = [...(c.result.wouldDelete ?? []), ...outcome.wouldDelete.map((d) => `store: ${d}`)];
  }
}
