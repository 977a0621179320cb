import type { Client } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { formatWallClock } from '../../domain/format';
import { JOB_WORKFLOW_TYPE } from '../../domain/jobs';
import { BACKUP_RESULT } from '../../domain/search-attributes';
import { weeklyProgress } from './weekly-progress';
import { EXIT, jsonOption, output, type CliCommand } from './command-kit';
import { restoreTestLines } from '../../domain/restore';
import { describeHeldDown, heldDownVms } from './held-down';
import { readRestoreTestLog } from './restore';
import { readOffsiteFreshness } from '../../adapters/restic/offsite-freshness';
import { offsiteStatusLines } from '../../domain/offsite';
import { describeRepositoryStatus, resticRepositoryStatus } from './repository-status';

const JOB_TYPES = [...Object.entries(JOB_WORKFLOW_TYPE), ['watchdog', 'backupWatchdog']] as const;

export interface RunningRun {
  workflowId: string;
  startedAt: string;
  /** Pending activities with their last heartbeat (bytes done, offset, file). */
  activities: { type: string; attempt: number; details?: unknown }[];
  /** Weekly runs: the step each VM is in. */
  vms: { vm: string; step: string }[];
}

export interface JobStatus {
  job: string;
  /** The newest finished run: its Temporal status and, when tagged, its BackupResult. */
  last?: { workflowId: string; status: string; result?: string; closedAt?: string };
  running: RunningRun[];
}

/** The last finished run of each job, and every running one with its progress (heartbeats, VM steps). */
export async function jobStatuses(client: Client): Promise<JobStatus[]> {
  const statuses: JobStatus[] = [];
  for (const [job, type] of JOB_TYPES) {
    const status: JobStatus = { job, running: [] };
    for await (const run of client.workflow.list({
      query: `WorkflowType = '${type}' AND ExecutionStatus != 'Running'`,
    })) {
      const result = run.typedSearchAttributes.get(BACKUP_RESULT);
      status.last = {
        workflowId: run.workflowId,
        status: run.status.name,
        ...(result ? { result } : {}),
        ...(run.closeTime ? { closedAt: run.closeTime.toISOString() } : {}),
      };
      break;
    }
    for await (const run of client.workflow.list({
      query: `WorkflowType = '${type}' AND ExecutionStatus = 'Running'`,
    })) {
      const handle = client.workflow.getHandle(run.workflowId, run.runId);
      const { raw } = await handle.describe();
      const activities = (raw.pendingActivities ?? []).map((activity) => {
        const payload = activity.heartbeatDetails?.payloads?.[0];
        return {
          type: activity.activityType?.name ?? 'activity',
          attempt: activity.attempt ?? 1,
          ...(payload ? { details: defaultPayloadConverter.fromPayload(payload) } : {}),
        };
      });
      const progress =
        type === JOB_WORKFLOW_TYPE.weekly ? await weeklyProgress(client, handle).catch(() => undefined) : undefined;
      status.running.push({
        workflowId: run.workflowId,
        startedAt: run.startTime.toISOString(),
        activities,
        vms: (progress?.vms ?? []).map((v) => ({
          vm: v.vm,
          step: v.step,
          ...(v.hypervisor && { hypervisor: v.hypervisor }),
        })),
      });
    }
    statuses.push(status);
  }
  return statuses;
}

const utc = (iso: string | undefined) => (iso ? `${formatWallClock(new Date(iso), 'UTC')} UTC` : '-');

/** Rows padded to the widest cell of each column. */
export function table(rows: readonly (readonly string[])[]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) =>
    r
      .map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd(),
  );
}

/** A table of jobs, then each running run's pending activities and VM steps under it. */
export function formatStatus(statuses: readonly JobStatus[]): string[] {
  const rows = [
    ['JOB', 'LAST RUN', 'STATUS', 'RESULT', 'FINISHED', 'RUNNING NOW'],
    ...statuses.map((s) => [
      s.job,
      s.last?.workflowId ?? 'none',
      s.last?.status ?? '-',
      s.last?.result ?? '-',
      utc(s.last?.closedAt),
      s.running.length ? s.running.map((r) => r.workflowId).join(', ') : '-',
    ]),
  ];
  const lines = table(rows);
  for (const run of statuses.flatMap((s) => s.running)) {
    lines.push('', `${run.workflowId}: running since ${utc(run.startedAt)}`);
    for (const a of run.activities)
      lines.push(`  ${a.type} attempt ${a.attempt}${a.details !== undefined ? ` ${JSON.stringify(a.details)}` : ''}`);
    for (const vm of run.vms) lines.push(`  ${JSON.stringify(vm.vm)}: ${vm.step}`);
  }
  return lines;
}

export const statusCommand: CliCommand = {
  name: ['status'],
  summary:
    'the last run of each job, what is running now with its progress, and the VMs a weekly run holds down ' +
    '(from the records on the hypervisor)',
  define: jsonOption,
  run: (cli, command) =>
    cli.withClient(async (client, config) => {
      const jobs = await jobStatuses(client);
      const heldDown = await heldDownVms(config);
      const restoreTests = await readRestoreTestLog(config);
      const repository = await resticRepositoryStatus(config);
      const offsite = await readOffsiteFreshness(config, new Date());
      output(command, { jobs, heldDown, restoreTests, ...(repository ? { repository } : {}), offsite }, () => [
        ...formatStatus(jobs),
        '',
        `VMs held down now: ${heldDown.length === 0 ? 'none' : ''}`,
        ...heldDown.map((record) => `  ${describeHeldDown(record)}`),
        '',
        ...(restoreTestLines(restoreTests).length ? restoreTestLines(restoreTests) : ['restore test: none yet']),
        ...(repository ? ['', ...describeRepositoryStatus(repository)] : []),
        ...(offsite.length ? ['', ...offsiteStatusLines(offsite)] : []),
      ]);
      return EXIT.ok;
    }),
};
