import { isCancellation } from '@temporalio/workflow';
import { formatDuration } from '../../domain/format';
import type { VmProgress, VmResult, WeeklySettings } from '../../domain/weekly-summary';
import { failureText } from '../failure-text';
import { newCycle, SkipVm, type Cycle } from './cycle';
import { OverBudget } from './downtime';
import { offlineCycle } from './offline';
import { overlayCycle } from './overlay';
import { putBack } from './phases/put-back';

/**
 * One VM through its cycle (offline.ts or overlay.ts, per its policy's `imaging`), as a saga: before a phase
 * that can half-succeed its undo is pushed, dropped once the phase's effect is confirmed; every way out
 * (failure, abort, cancel) runs what is left, non-cancellable, and records each outcome.
 */
export async function vmCycle(
  vm: string,
  stamp: string,
  settings: WeeklySettings,
  progress: VmProgress,
  progressChanged: () => void = () => undefined,
): Promise<VmResult> {
  const c = newCycle(vm, stamp, settings, progress, progressChanged);
  try {
    await (c.policy.imaging === 'overlay' ? overlayCycle(c) : offlineCycle(c));
    c.result.status = 'backed-up';
  } catch (err) {
    noteFailure(c, err);
  }
  await putBack(c);
  c.step.finish('done');
  return c.result;
}

function noteFailure(c: Cycle, err: unknown): void {
  const { result } = c;
  if (err instanceof SkipVm) {
    result.status = 'skipped';
    result.reason = err.message;
    return;
  }
  result.status = isCancellation(err) ? 'aborted' : 'failed';
  result.failedStep = c.step.current;
  result.reason = isCancellation(err)
    ? `${c.step.current} interrupted: run aborted or cancelled`
    : err instanceof OverBudget
      ? `downtime budget of ${formatDuration(c.policy.maxDowntimeSeconds * 1000)} reached while imaging: imaging abandoned, VM started again`
      : failureText(err);
}

export function notStarted(vm: string, reason: string): VmResult {
  return {
    vm,
    status: 'aborted',
    reason,
    wasRunning: null,
    runningAtEnd: null,
    images: [],
    stored: [],
    steps: [],
    deleted: [],
  };
}
