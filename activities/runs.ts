import type { Client } from '@temporalio/client';
import type { RunRef } from '../adapters/run-lock';
import { missingDependency } from './failures';

export interface RunsDeps {
  temporalClient?: () => Promise<Client>;
}

/**
 * Whether a run is closed (terminated, timed out, failed, completed): a lock or a held-down record it left
 * may be taken over. A run Temporal no longer knows is closed.
 */
export async function runIsClosed(temporalClient: RunsDeps['temporalClient'], run: RunRef): Promise<boolean> {
  if (!temporalClient) throw missingDependency('needs a Temporal client to check the run holding a lock');
  const client = await temporalClient();
  try {
    const { status } = await client.workflow.getHandle(run.workflowId, run.runId).describe();
    return status.name !== 'RUNNING';
  } catch (err) {
    if ((err as Error).name === 'WorkflowNotFoundError') return true;
    throw err;
  }
}

/** Other runs of a workflow type, asked of Temporal's visibility. */
export function createRunsActivities({ temporalClient }: RunsDeps) {
  /** Open runs of the type that started before `startedAt` (ties: the smaller workflow ID), oldest first. */
  async function openRunsBefore(workflowType: string, startedAt: string, workflowId: string): Promise<string[]> {
    if (!temporalClient) throw missingDependency('needs a Temporal client to look for other runs');
    const client = await temporalClient();
    const earlier: { id: string; at: number }[] = [];
    const mine = Date.parse(startedAt);
    for await (const run of client.workflow.list({
      query: `WorkflowType = '${workflowType}' AND ExecutionStatus = 'Running'`,
    })) {
      const at = run.startTime.getTime();
      if (run.workflowId !== workflowId && (at < mine || (at === mine && run.workflowId < workflowId)))
        earlier.push({ id: run.workflowId, at });
    }
    return earlier.sort((a, b) => a.at - b.at).map((r) => r.id);
  }

  return { openRunsBefore };
}
