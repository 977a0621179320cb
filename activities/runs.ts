import type { Client } from '@temporalio/client';

export interface RunsDeps {
  temporalClient?: () => Promise<Client>;
}

/** Other runs of a workflow type, asked of Temporal's visibility. */
export function createRunsActivities({ temporalClient }: RunsDeps) {
  /** Open runs of the type that started before `startedAt` (ties: the smaller workflow ID), oldest first. */
  async function openRunsBefore(workflowType: string, startedAt: string, workflowId: string): Promise<string[]> {
    if (!temporalClient) throw new Error('needs a Temporal client to look for other runs');
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
