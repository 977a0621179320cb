import { ScheduleOverlapPolicy, type Client, type ScheduleOptions } from '@temporalio/client';
import { readRestoreTestLog as readTestLog } from '../../adapters/image-sets/restore-test-log';
import type { Config } from '../../config/schema';
import { formatBytes, formatDuration } from '../../domain/format';
import {
  restoreTestLines,
  type DayRestoreRequest,
  type DayRestoreResult,
  type RestoreNetwork,
  type RestoreTestLog,
  type RestoreTestSummary,
  type RestoreVmRequest,
  type RestoreVmResult,
} from '../../domain/restore';
import { unsafeVmNameReason } from '../../domain/vm-names';
import type { restoreDay, restoreTest, restoreVm } from '../../workflows';

export const RESTORE_TEST_SCHEDULE_ID = 'cluster-backup-restore-test';

/** What the restore commands take from the command line, already parsed. */
export interface RestoreOptions {
  set?: string;
  as?: string;
  start?: boolean;
  stop?: boolean;
  replace?: boolean;
  keepNetwork?: boolean;
  to?: string;
  host?: string;
  overwrite?: boolean;
}

export class RestoreUsageError extends Error {}

/** `restore vm <vm> --as NAME | --set STAMP --replace`: the workflow's request, checked. */
export function restoreVmRequest(vm: string | undefined, options: RestoreOptions): RestoreVmRequest {
  if (!vm) throw new RestoreUsageError('restore vm needs the VM name');
  const problem = unsafeVmNameReason(vm);
  if (problem) throw new RestoreUsageError(`refused VM name ${JSON.stringify(vm)}: ${problem}`);
  if (options.replace) {
    if (options.as) throw new RestoreUsageError('--replace and --as exclude each other');
    if (!options.set) throw new RestoreUsageError('--replace needs --set STAMP (say which set replaces the disks)');
    if (options.start || options.keepNetwork) throw new RestoreUsageError('--start and --keep-network go with --as');
    return { vm, mode: 'replace', stamp: options.set, stop: options.stop === true };
  }
  if (!options.as) throw new RestoreUsageError('restore vm needs --as NEW-NAME (or --set STAMP --replace)');
  const nameProblem = unsafeVmNameReason(options.as);
  if (nameProblem) throw new RestoreUsageError(`refused name ${JSON.stringify(options.as)}: ${nameProblem}`);
  if (options.stop) throw new RestoreUsageError('--stop goes with --replace');
  const network: RestoreNetwork = options.keepNetwork ? 'keep' : 'link-down';
  return {
    vm,
    mode: 'as',
    newName: options.as,
    ...(options.set ? { stamp: options.set } : {}),
    start: options.start === true,
    network,
  };
}

export function restoreVmWorkflowId(request: RestoreVmRequest): string {
  return request.mode === 'as'
    ? `restore-${request.vm}-as-${request.newName}`
    : `restore-${request.vm}-replace-${request.stamp ?? 'newest'}`;
}

/** Starts the restore (or joins the one already running with the same ID). */
export function startRestoreVm(client: Client, config: Config, request: RestoreVmRequest, workflowId?: string) {
  return client.workflow.start<typeof restoreVm>('restoreVm', {
    taskQueue: config.temporal.taskQueue,
    workflowId: workflowId ?? restoreVmWorkflowId(request),
    args: [request],
    workflowIdConflictPolicy: 'USE_EXISTING',
    workflowIdReusePolicy: 'ALLOW_DUPLICATE',
  });
}

export function startRestoreDay(client: Client, config: Config, day: string, options: RestoreOptions) {
  const request: DayRestoreRequest = {
    day,
    ...(options.to ? { to: options.to } : {}),
    ...(options.host ? { host: options.host } : {}),
    overwrite: options.overwrite === true,
  };
  return client.workflow.start<typeof restoreDay>('restoreDay', {
    taskQueue: config.temporal.taskQueue,
    workflowId: `restore-day-${day}`,
    args: [request],
    workflowIdConflictPolicy: 'USE_EXISTING',
    workflowIdReusePolicy: 'ALLOW_DUPLICATE',
  });
}

export function startRestoreTest(client: Client, config: Config, vm?: string, workflowId?: string) {
  return client.workflow.start<typeof restoreTest>('restoreTest', {
    taskQueue: config.temporal.taskQueue,
    workflowId: workflowId ?? `restore-test-${vm ?? 'next'}`,
    args: [vm ? { vm } : {}],
    workflowIdConflictPolicy: 'USE_EXISTING',
    workflowIdReusePolicy: 'ALLOW_DUPLICATE',
  });
}

/** The weekly restore test's schedule (created by `schedules apply` when there is a hypervisor and a store). */
export function restoreTestSchedule(config: Config): ScheduleOptions {
  const { dayOfWeek, at, paused } = config.restoreTest.schedule;
  const [hour, minute] = at.split(':').map(Number) as [number, number];
  return {
    scheduleId: RESTORE_TEST_SCHEDULE_ID,
    spec: { calendars: [{ hour, minute, dayOfWeek, comment: 'restore test' }], timezone: config.schedules.timeZone },
    action: {
      type: 'startWorkflow',
      workflowType: 'restoreTest',
      args: [{}],
      taskQueue: config.temporal.taskQueue,
      workflowId: 'restore-test-scheduled',
    },
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: `${config.schedules.catchupWindowHours} hours` },
    state: { paused, note: 'managed by cluster-backup schedules apply' },
  };
}

/** The last boot test of each VM, read from the store (for `status`, `store verify` and reports). */
export async function readRestoreTestLog(config: Config): Promise<RestoreTestLog> {
  return config.store ? readTestLog(config.store.root) : {};
}

export async function restoreTestStatusLines(config: Config): Promise<string[]> {
  const lines = restoreTestLines(await readRestoreTestLog(config));
  return lines.length ? lines : ['restore test: none yet'];
}

export function formatRestoreVm(r: RestoreVmResult): string {
  const what = r.request.mode === 'as' ? `${r.vm} as ${r.request.newName}` : `${r.vm} (--replace)`;
  const lines = [
    `restore ${what} from set ${r.stamp ?? '?'}: ${r.ok ? 'OK' : r.aborted ? `ABORTED (${r.aborted})` : 'FAILED'}${r.reason ? ` - ${r.reason}` : ''}`,
  ];
  if (r.failedStep)
    lines.push(`  failed at: ${r.failedStep}${r.putBack ? '; the original disks are back in place' : ''}`);
  for (const p of r.pushed)
    lines.push(
      `  ${p.disk}: ${formatBytes(p.bytes)} -> ${p.path} (SHA-256 on arrival = manifest ${p.sha256.slice(0, 16)}…)`,
    );
  for (const k of r.keptAs) lines.push(`  previous disk kept as ${k}`);
  if (r.domain) lines.push(`  domain ${JSON.stringify(r.domain)}: ${r.state ?? '?'}`);
  lines.push(`  steps: ${r.steps.map((s) => `${s.step} ${formatDuration(s.ms)}`).join(', ')}`);
  return lines.join('\n');
}

export function formatDayRestore(r: DayRestoreResult): string {
  return [
    `restore day ${r.day} -> ${r.host}:${r.to}: ${r.ok ? 'OK' : 'NOT COMPLETE'}${r.reason ? ` - ${r.reason}` : ''}`,
    `  ${r.filesRestored}/${r.filesInBackup} file(s) restored, ${formatBytes(r.bytesRestored)}, SHA-256 checked on arrival`,
    ...r.existing.map((f) => `  exists, left alone: ${f}`),
    ...r.overwritten.map((f) => `  overwritten: ${f}`),
  ].join('\n');
}

export function formatRestoreTest(s: RestoreTestSummary): string {
  if (!s.result) return 'restore test: no VM with a verified stored set';
  const t = s.result;
  return `restore test ${t.vm} set ${t.stamp}: ${t.passed ? 'PASSED' : 'FAILED'} - ${t.detail}`;
}

/**
 * `restore vm|day|test ...` for the CLI: starts the workflow, waits, prints; exit code 0 only when it
 * says ok. `connect` hands over a Temporal client for the duration of the command.
 */
export async function runRestoreCommand(
  args: string[],
  options: RestoreOptions & { json?: boolean },
  connect: <T>(use: (client: Client, config: Config) => Promise<T>) => Promise<T>,
): Promise<number> {
  const [what, target] = args;
  const print = <S extends { ok: boolean }>(summary: S, format: (s: S) => string) => {
    console.log(options.json ? JSON.stringify(summary, null, 2) : format(summary));
    return summary.ok ? 0 : 1;
  };
  const announce = (handle: { workflowId: string; firstExecutionRunId: string }) => {
    if (!options.json) console.error(`workflow ${handle.workflowId} (run ${handle.firstExecutionRunId}); waiting...`);
  };
  switch (what) {
    case 'vm': {
      const request = restoreVmRequest(target, options);
      return connect(async (client, config) => {
        const handle = await startRestoreVm(client, config, request);
        announce(handle);
        return print(await handle.result(), formatRestoreVm);
      });
    }
    case 'day':
      if (!target || !/^\d{4}-\d{3}$/.test(target)) throw new RestoreUsageError('restore day needs a day YYYY-DDD');
      return connect(async (client, config) => {
        const handle = await startRestoreDay(client, config, target, options);
        announce(handle);
        return print(await handle.result(), formatDayRestore);
      });
    case 'test':
      return connect(async (client, config) => {
        const handle = await startRestoreTest(client, config, target);
        announce(handle);
        return print(await handle.result(), formatRestoreTest);
      });
    default:
      throw new RestoreUsageError('restore what? vm, day or test');
  }
}
