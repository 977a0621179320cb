import type { Client, WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import type { Config } from '../../config/schema';
import { isoDateInZone } from '../../domain/julian-day';
import { isoWeekLabel, type WeeklySummary } from '../../domain/weekly-summary';
import type { weeklyVmBackup } from '../../workflows';
import { formatBytes, formatDuration } from '../../domain/format';

export function weeklyWorkflowId(isoDate: string): string {
  return `vms-${isoWeekLabel(isoDate)}`;
}

/** Starts this week's VM backup, or joins the one already running (one per ISO week). */
export async function startWeekly(
  client: Client,
  config: Config,
  vms?: string[],
  workflowId = weeklyWorkflowId(isoDateInZone(new Date(), config.supim?.timeZone ?? 'America/Sao_Paulo')),
): Promise<WorkflowHandleWithFirstExecutionRunId<typeof weeklyVmBackup>> {
  return client.workflow.start<typeof weeklyVmBackup>('weeklyVmBackup', {
    taskQueue: config.temporal.taskQueue,
    workflowId,
    args: [vms?.length ? { vms } : {}],
    workflowIdConflictPolicy: 'USE_EXISTING',
    workflowIdReusePolicy: 'ALLOW_DUPLICATE',
  });
}

export function formatWeeklySummary(summary: WeeklySummary): string {
  const lines = [
    `weekly VM backup ${summary.week} (set ${summary.stamp}): ${summary.ok ? 'OK' : 'FAILED'}${summary.aborted ? ` - aborted: ${summary.aborted}` : ''}`,
  ];
  for (const vm of summary.vms) {
    const state =
      vm.runningAtEnd === true
        ? 'running'
        : vm.wasRunning === false
          ? 'was off, left off'
          : vm.runningAtEnd === false
            ? 'NOT RUNNING'
            : 'untouched';
    const downtime = vm.downtimeMs !== undefined ? `, downtime ${formatDuration(vm.downtimeMs)}` : '';
    lines.push(
      `  ${JSON.stringify(vm.vm)}  ${vm.status.padEnd(9)}  ${state}${downtime}${vm.reason ? `  - ${vm.reason}` : ''}`,
    );
    if (vm.failedStep) lines.push(`      failed at: ${vm.failedStep}`);
    for (const image of vm.images) {
      lines.push(`      ${image.disk}: ${formatBytes(image.bytes)} sha256 ${image.sha256.slice(0, 16)}… ${image.path}`);
    }
    for (const image of vm.stored)
      lines.push(`      stored ${image.disk}: ${image.path} (hash matches the hypervisor's)`);
    if (vm.steps.length)
      lines.push(`      steps: ${vm.steps.map((s) => `${s.step} ${formatDuration(s.ms)}`).join(', ')}`);
    for (const d of vm.deleted) lines.push(`      deleted: ${d}`);
    for (const d of vm.wouldDelete ?? []) lines.push(`      would delete (dry run, kept): ${d}`);
  }
  return lines.join('\n');
}
