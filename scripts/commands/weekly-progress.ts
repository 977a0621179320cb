import type { Client, WorkflowHandle } from '@temporalio/client';
import { progressQuery, type WeeklyProgress } from '../../workflows/definitions';

/**
 * A weekly run's progress with every hypervisor's VMs: a run over several hypervisors keeps its VMs in one
 * child run per hypervisor (named in `hosts`), each answering the same query. Runs from before answer whole.
 */
export async function weeklyProgress(client: Client, handle: WorkflowHandle): Promise<WeeklyProgress> {
  const top = await handle.query(progressQuery);
  if (!top.hosts?.length) return top;
  const parts = await Promise.all(
    top.hosts.map(async ({ hypervisor, workflowId }) => {
      const child = await client.workflow
        .getHandle(workflowId)
        .query(progressQuery)
        .catch(() => undefined); // not started yet, or closed
      return (child?.vms ?? []).map((v) => ({ ...v, hypervisor }));
    }),
  );
  return { ...top, vms: [...top.vms, ...parts.flat()] };
}
