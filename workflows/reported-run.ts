import { isCancellation } from '@temporalio/workflow';
import type { Job } from '../domain/jobs';
import type { RunOutcome } from '../domain/run-outcome';
import { failureText } from './failure-text';
import { reportRun } from './report-run';
import { RunTags } from './run-tags';

export interface ReportedRun<S> {
  /** The period the run covers (julian day, ISO week): its search attribute and the report's label. */
  named(label: string): void;
  /** What the run has done so far: reported even when it fails or is cancelled. */
  sofar(summary: () => S): void;
}

/**
 * The part every job shares: tags the run, and on every way out (success, failure, cancel) records the
 * result in its search attributes and sends the report.
 */
export async function reportedRun<S extends { ok: boolean }>(
  job: Job,
  body: (run: ReportedRun<S>) => Promise<S>,
): Promise<S> {
  const tags = await RunTags.start(job);
  let runLabel = 'run';
  let sofar: (() => S) | undefined;
  let outcome: RunOutcome<S> = { state: 'failed', error: 'the run did not finish' };
  try {
    const summary = await body({
      named: (label) => {
        runLabel = label;
        tags.period(label);
      },
      sofar: (summary) => {
        sofar = summary;
      },
    });
    outcome = { state: 'completed', summary };
    return summary;
  } catch (err) {
    const summary = sofar ? { summary: sofar() } : {};
    outcome = isCancellation(err)
      ? { state: 'cancelled', ...summary }
      : { state: 'failed', error: failureText(err), ...summary };
    throw err;
  } finally {
    tags.finish(outcome);
    // The job names which summary the outcome carries (daily or weekly).
    await reportRun({ job, outcome, runLabel } as Parameters<typeof reportRun>[0]);
  }
}
