import type { Client, WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import type { Command } from 'commander';
import type { Config } from '../../config/schema';
import { resticNote, type DailySummary } from '../../domain/daily-summary';
import { calendarDay, isoDateInZone } from '../../domain/julian-day';
import type { dailySupimBackup } from '../../workflows';
import { formatBytes } from '../../domain/format';
import { dateOption, EXIT, jsonOption, output, type CliCommand } from './command-kit';

export function dailyWorkflowId(isoDate: string): string {
  return `supim-${calendarDay(isoDate).label}`;
}

/**
 * Starts the daily run for a date, or joins the one already running for it (same workflow ID):
 * two starts for one date never copy twice at once.
 */
export async function startDaily(
  client: Client,
  config: Config,
  date?: string,
): Promise<WorkflowHandleWithFirstExecutionRunId<typeof dailySupimBackup>> {
  const isoDate = date ?? isoDateInZone(new Date(), config.supim?.timeZone ?? 'America/Sao_Paulo');
  calendarDay(isoDate); // refuses a bad date before anything starts
  return client.workflow.start<typeof dailySupimBackup>('dailySupimBackup', {
    taskQueue: config.temporal.taskQueue,
    workflowId: dailyWorkflowId(isoDate),
    args: [{ date: isoDate }],
    workflowIdConflictPolicy: 'USE_EXISTING',
    workflowIdReusePolicy: 'ALLOW_DUPLICATE',
  });
}

export function formatDailySummary(summary: DailySummary): string {
  const lines = [`daily SUPIM backup for ${summary.runDate} (${summary.timeZone}): ${summary.ok ? 'OK' : 'FAILED'}`];
  for (const d of summary.days) {
    const counts = `${d.filesCopied}/${d.filesInSource} files copied, ${formatBytes(d.bytesCopied)}`;
    lines.push(
      `  ${d.day.label} (${d.day.isoDate})  ${d.status.padEnd(8)}  ${counts}, ${(d.durationMs / 1000).toFixed(1)} s` +
        (d.reason ? `  - ${d.reason}` : ''),
    );
    if (d.skippedCount)
      lines.push(`      skipped ${d.skippedCount} symlink(s)/special file(s): ${d.skipped.join('; ')}`);
    for (const s of d.superseded) lines.push(`      superseded: ${s}`);
    const restic = resticNote(d);
    if (restic) lines.push(`      ${restic}`);
  }
  return lines.join('\n');
}

/** Waits for a run and prints its summary; exit 0 only when the summary says ok. */
export async function waitAndPrint<S extends { ok: boolean }>(
  command: Command,
  handle: { workflowId: string; firstExecutionRunId: string; result(): Promise<S> },
  format: (summary: S) => string,
): Promise<number> {
  if (!command.opts().json)
    console.error(`workflow ${handle.workflowId} (run ${handle.firstExecutionRunId}); waiting...`);
  const summary = await handle.result();
  output(command, summary, () => format(summary));
  return summary.ok ? EXIT.ok : EXIT.notOk;
}

export const runDailyCommand: CliCommand = {
  name: ['run', 'daily'],
  groupSummary: 'start a backup now (or join the one running), wait, print its summary',
  summary:
    'start the daily SUPIM backup (or join the running one), wait, print the summary; exit 0 only if every ' +
    'available day is backed up',
  define: (command) =>
    jsonOption(command).addOption(dateOption('--date <YYYY-MM-DD>', 'the day the run ends on (default: today)')),
  run: (cli, command) =>
    cli.withClient(async (client, config) =>
      waitAndPrint(command, await startDaily(client, config, command.opts().date), formatDailySummary),
    ),
};
