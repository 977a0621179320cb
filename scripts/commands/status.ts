import type { Client } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { JOB_WORKFLOW_TYPE } from '../../domain/jobs';
import { progressQuery } from '../../workflows/definitions';

const JOB_TYPES = [...Object.entries(JOB_WORKFLOW_TYPE), ['watchdog', 'backupWatchdog']] as const;

/** The last finished run of each job, and every running one with its progress (heartbeats, VM steps). */
export async function statusLines(client: Client): Promise<string[]> {
  const lines: string[] = [];
  for (const [job, type] of JOB_TYPES) {
    let last: string | undefined;
    for await (const run of client.workflow.list({
      query: `WorkflowType = '${type}' AND ExecutionStatus != 'Running'`,
    })) {
      last = `${run.workflowId} ${run.status.name} at ${run.closeTime?.toISOString() ?? '?'}`;
      break;
    }
    lines.push(`${job}: last run ${last ?? 'none'}`);
    for await (const run of client.workflow.list({
      query: `WorkflowType = '${type}' AND ExecutionStatus = 'Running'`,
    })) {
      const handle = client.workflow.getHandle(run.workflowId, run.runId);
      lines.push(`  running: ${run.workflowId} since ${run.startTime.toISOString()}`);
      const { raw } = await handle.describe();
      for (const activity of raw.pendingActivities ?? []) {
        const payload = activity.heartbeatDetails?.payloads?.[0];
        const details = payload ? JSON.stringify(defaultPayloadConverter.fromPayload(payload)) : '';
        lines.push(`    ${activity.activityType?.name ?? 'activity'} attempt ${activity.attempt ?? 1} ${details}`);
      }
      if (type === JOB_WORKFLOW_TYPE.weekly) {
        const progress = await handle.query(progressQuery).catch(() => undefined);
        for (const vm of progress?.vms ?? []) lines.push(`    ${JSON.stringify(vm.vm)}: ${vm.step}`);
      }
    }
  }
  return lines;
}
