import type { Client, WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import type { Config } from '../../config/schema';
import { isoDateInZone } from '../../domain/julian-day';
import { isoWeekLabel, type WeeklySummary } from '../../domain/weekly-summary';
import type { weeklyVmBackup } from '../../workflows';
import { formatBytes, formatDuration } from '../../domain/format';
import { jsonOption, vmOption, type CliCommand } from './command-kit';
import { waitAndPrint } from './run-daily';

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
  const several = (summary.hosts?.length ?? 0) > 1;
  for (const host of summary.hosts ?? []) {
    if (host.unreachable)
      lines.push(`  hypervisor ${host.hypervisor}: unreachable, its VMs untouched: ${host.unreachable}`);
    if (host.error) lines.push(`  hypervisor ${host.hypervisor}: its run failed: ${host.error}`);
  }
  for (const vm of summary.vms) {
    const name = several && vm.hypervisor ? `${vm.hypervisor}/${vm.vm}` : vm.vm;
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
      `  ${JSON.stringify(name)}  ${vm.status.padEnd(9)}  ${state}${downtime}${vm.reason ? `  - ${vm.reason}` : ''}`,
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

export const runVmsCommand: CliCommand = {
  name: ['run', 'vms'],
  summary:
    "start this week's VM backup (or join it), wait, print per-VM results; exit 0 only if every VM was imaged, " +
    'verified and is back as it was',
  define: (command) => vmOption(jsonOption(command), 'back up only this VM (hypervisor/name: on that hypervisor only)'),
  run: (cli, command) =>
    cli.withClient(async (client, config) =>
      waitAndPrint(command, await startWeekly(client, config, command.opts().vm), formatWeeklySummary),
    ),
};
