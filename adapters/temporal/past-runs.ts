/**
 * Earlier runs of a backup job, newest first, read back from Temporal: the outcome each run handed to its
 * report (so failed and cancelled runs count too, with whatever they had done), or the summary a completed
 * run returned. Nothing is added to the runs' own histories for this.
 */
import type { Client, WorkflowExecutionInfo } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import type { temporal } from '@temporalio/proto';
import type { DailySummary } from '../../domain/daily-summary';
import { calendarDay } from '../../domain/julian-day';
import { JOB_WORKFLOW_TYPE, type Job } from '../../domain/jobs';
import type { RunOutcome } from '../../domain/run-outcome';
import { BACKUP_PERIOD } from '../../domain/search-attributes';
import type { WeeklySummary } from '../../domain/weekly-summary';

export interface PastRun<S> {
  workflowId: string;
  runId: string;
  /** When the run closed; a run's report is sent just before. */
  closedAt: Date;
  /** Its julian day (2026-331) or ISO week (2026-W48), when known. */
  label?: string;
  outcome: RunOutcome<S>;
}

export type Summaries = { daily: DailySummary; weekly: WeeklySummary };

/** The activity type whose input carries a run's outcome (workflows/report-run.ts). */
const REPORT_ACTIVITY = 'sendReport';

// A closed run's history never changes: read each once per process.
const seen = new Map<string, PastRun<unknown>>();
const SEEN_LIMIT = 500;

function decode<T>(payload: temporal.api.common.v1.IPayload | null | undefined): T | undefined {
  return payload ? defaultPayloadConverter.fromPayload<T>(payload) : undefined;
}

function summaryLabel(job: Job, summary: unknown): string | undefined {
  if (job === 'daily') {
    const runDate = (summary as Partial<DailySummary> | undefined)?.runDate;
    return runDate ? calendarDay(runDate).label : undefined;
  }
  return (summary as Partial<WeeklySummary> | undefined)?.week;
}

/** What a closed run's history says it did: the outcome it reported, else the summary it returned. */
export function runFromHistory<J extends Job>(
  job: J,
  history: temporal.api.history.v1.IHistory,
  execution: Pick<WorkflowExecutionInfo, 'workflowId' | 'runId' | 'startTime' | 'closeTime' | 'status'> & {
    period?: string;
  },
): PastRun<Summaries[J]> {
  const closedAt = execution.closeTime ?? execution.startTime;
  const base = { workflowId: execution.workflowId, runId: execution.runId, closedAt };
  for (const event of history.events ?? []) {
    const scheduled = event.activityTaskScheduledEventAttributes;
    if (scheduled?.activityType?.name !== REPORT_ACTIVITY) continue;
    const request = decode<{ outcome?: RunOutcome<Summaries[J]>; runLabel?: string }>(scheduled.input?.payloads?.[0]);
    if (request?.outcome) {
      const label = summaryLabel(job, request.outcome.summary) ?? request.runLabel;
      return { ...base, ...(label ? { label } : {}), outcome: request.outcome };
    }
  }
  const completed = history.events?.find((e) => e.workflowExecutionCompletedEventAttributes);
  const summary = decode<Summaries[J]>(completed?.workflowExecutionCompletedEventAttributes?.result?.payloads?.[0]);
  const label = summaryLabel(job, summary) ?? execution.period;
  const outcome: RunOutcome<Summaries[J]> = summary
    ? { state: 'completed', summary }
    : execution.status.name === 'CANCELLED'
      ? { state: 'cancelled' }
      : { state: 'failed', error: `the run ended ${execution.status.name.toLowerCase()} without a report` };
  return { ...base, ...(label ? { label } : {}), outcome };
}

/** Closed runs of the job, newest first (as visibility orders them: by close time). */
export async function* pastRuns<J extends Job>(client: Client, job: J): AsyncGenerator<PastRun<Summaries[J]>> {
  const query = `WorkflowType = '${JOB_WORKFLOW_TYPE[job]}' AND ExecutionStatus != 'Running'`;
  for await (const execution of client.workflow.list({ query })) {
    const key = `${execution.workflowId}/${execution.runId}`;
    let run = seen.get(key) as PastRun<Summaries[J]> | undefined;
    if (!run) {
      const history = await client.workflow.getHandle(execution.workflowId, execution.runId).fetchHistory();
      const period = execution.typedSearchAttributes.get(BACKUP_PERIOD);
      run = runFromHistory(job, history, { ...execution, ...(period ? { period } : {}) });
      if (seen.size >= SEEN_LIMIT) seen.delete(seen.keys().next().value!);
      seen.set(key, run);
    }
    yield run;
  }
}
