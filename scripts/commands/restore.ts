import { ScheduleOverlapPolicy, type Client, type ScheduleOptions } from '@temporalio/client';
import { readRestoreTestLog as readTestLog } from '../../adapters/image-sets/restore-test-log';
import type { Config } from '../../config/schema';
import { formatBytes, formatDuration } from '../../domain/format';
import {
  consoleQuote,
  type DayRestoreRequest,
  type DayRestoreResult,
  skippedLines,
  type RestoreNetwork,
  type RestoreTestLog,
  type RestoreTestSummary,
  type RestoreVmRequest,
  type RestoreVmResult,
} from '../../domain/restore';
import { unsafeVmNameReason } from '../../domain/vm-names';
import type { restoreDay, restoreTest, restoreVm } from '../../workflows';
import { jsonOption, UsageError, type CliCommand } from './command-kit';
import { checkOffsiteOf, FROM_OFFSITE_HELP, offsiteOf } from './restore-from';
import { waitAndPrint } from './run-daily';

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
  from?: string;
  hypervisor?: string;
}

/** `restore vm <vm> --as NAME | --set STAMP --replace`: the workflow's request, checked. */
export function restoreVmRequest(vm: string | undefined, options: RestoreOptions): RestoreVmRequest {
  if (!vm) throw new UsageError('restore vm needs the VM name');
  const problem = unsafeVmNameReason(vm);
  if (problem) throw new UsageError(`refused VM name ${JSON.stringify(vm)}: ${problem}`);
  if (options.replace) {
    if (options.as) throw new UsageError('--replace and --as exclude each other');
    if (!options.set) throw new UsageError('--replace needs --set STAMP (say which set replaces the disks)');
    if (options.start || options.keepNetwork) throw new UsageError('--start and --keep-network go with --as');
    return { vm, mode: 'replace', stamp: options.set, stop: options.stop === true, ...onHypervisor(options) };
  }
  if (!options.as) throw new UsageError('restore vm needs --as NEW-NAME (or --set STAMP --replace)');
  const nameProblem = unsafeVmNameReason(options.as);
  if (nameProblem) throw new UsageError(`refused name ${JSON.stringify(options.as)}: ${nameProblem}`);
  if (options.stop) throw new UsageError('--stop goes with --replace');
  const network: RestoreNetwork = options.keepNetwork ? 'keep' : 'link-down';
  return {
    vm,
    mode: 'as',
    newName: options.as,
    ...(options.set ? { stamp: options.set } : {}),
    start: options.start === true,
    network,
    ...onHypervisor(options),
  };
}

function onHypervisor(options: RestoreOptions): { hypervisor?: string; offsite?: string } {
  return {
    ...(options.hypervisor !== undefined ? { hypervisor: options.hypervisor } : {}),
    ...offsiteOf(options.from),
  };
}

/** A --hypervisor the config does not name is refused before anything starts. */
export function checkHypervisorOf(request: RestoreVmRequest, config: Config): void {
  const names = config.hypervisors.map((h) => h.name);
  if (request.hypervisor !== undefined && !names.includes(request.hypervisor))
    throw new UsageError(
      `no hypervisor ${JSON.stringify(request.hypervisor)} in config (have: ${names.join(', ') || 'none'})`,
    );
}

export function restoreVmWorkflowId(request: RestoreVmRequest): string {
  const vm = request.hypervisor !== undefined ? `${request.hypervisor}-${request.vm}` : request.vm;
  return request.mode === 'as'
    ? `restore-${vm}-as-${request.newName}`
    : `restore-${vm}-replace-${request.stamp ?? 'newest'}`;
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

/** `restore day --from store|restic|offsite:<name>`, checked: the request's fields. */
export function dayRestoreSource(from: string): { from?: 'store' | 'restic'; offsite?: string } {
  if (from.startsWith('offsite:')) return offsiteOf(from);
  if (from !== 'store' && from !== 'restic')
    throw new UsageError(`--from is store, restic or offsite:<name>, not ${JSON.stringify(from)}`);
  return { from };
}

export function startRestoreDay(client: Client, config: Config, day: string, options: RestoreOptions) {
  const request: DayRestoreRequest = {
    day,
    ...(options.to ? { to: options.to } : {}),
    ...(options.host ? { host: options.host } : {}),
    overwrite: options.overwrite === true,
    ...(options.from ? dayRestoreSource(options.from) : {}),
  };
  checkOffsiteOf(request, config);
  return client.workflow.start<typeof restoreDay>('restoreDay', {
    taskQueue: config.temporal.taskQueue,
    workflowId: `restore-day-${day}`,
    args: [request],
    workflowIdConflictPolicy: 'USE_EXISTING',
    workflowIdReusePolicy: 'ALLOW_DUPLICATE',
  });
}

export function startRestoreTest(client: Client, config: Config, vm?: string, workflowId?: string, offsite?: string) {
  const input = { ...(vm ? { vm } : {}), ...(offsite !== undefined ? { offsite } : {}) };
  checkOffsiteOf(input, config);
  return client.workflow.start<typeof restoreTest>('restoreTest', {
    taskQueue: config.temporal.taskQueue,
    workflowId: workflowId ?? `restore-test-${vm ?? 'next'}${offsite !== undefined ? `-offsite-${offsite}` : ''}`,
    args: [input],
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
  for (const d of r.leftOut ?? []) lines.push(`  left out of the copy (tied to the host): ${d}`);
  if (r.domain) lines.push(`  domain ${JSON.stringify(r.domain)}: ${r.state ?? '?'}`);
  lines.push(`  steps: ${r.steps.map((s) => `${s.step} ${formatDuration(s.ms)}`).join(', ')}`);
  return lines.join('\n');
}

export function formatDayRestore(r: DayRestoreResult): string {
  return [
    `restore day ${r.day} -> ${r.host}:${r.to}: ${r.ok ? 'OK' : 'NOT COMPLETE'}${r.reason ? ` - ${r.reason}` : ''}`,
    ...(r.snapshot ? [`  from ${r.from}`] : []),
    `  ${r.filesRestored}/${r.filesInBackup} file(s) restored, ${formatBytes(r.bytesRestored)}, SHA-256 checked on arrival`,
    ...r.existing.map((f) => `  exists, left alone: ${f}`),
    ...r.overwritten.map((f) => `  overwritten: ${f}`),
    ...skippedLines(r).map((line) => `  ${line}`),
  ].join('\n');
}

export function formatRestoreTest(s: RestoreTestSummary): string {
  if (!s.result) return 'restore test: no VM with a verified stored set';
  const t = s.result;
  return [
    `restore test ${t.vm} set ${t.stamp}: ${t.passed ? 'PASSED' : 'FAILED'} - ${t.detail}`,
    ...consoleQuote(t),
  ].join('\n');
}

export const restoreVmCommand: CliCommand = {
  name: ['restore', 'vm'],
  groupSummary: 'the way back: a VM or a SUPIM day from the store, and the boot test of stored images',
  summary:
    'restore a VM from its newest (or --set) stored image set: as a new domain (--as NAME; off and without ' +
    'network unless --start/--keep-network), or in place (--set STAMP --replace [--stop]; the old disks are ' +
    'kept as <file>.before-restore-<stamp>)',
  define: (command) =>
    jsonOption(command)
      .argument('<vm>', 'the VM whose stored set is restored')
      .option('--as <name>', 'define the copy as a new domain with this name')
      .option('--set <stamp>', 'the stored set (default: the newest verified one)')
      .option('--start', 'start the copy (with --as)')
      .option('--keep-network', 'keep its network interfaces up (with --as; default: link down)')
      .option('--replace', 'put the set back in place of the VM`s disks (needs --set)')
      .option('--stop', 'shut the VM down cleanly first (with --replace)')
      .option('--hypervisor <name>', 'the hypervisor the VM lives on (default: the first of the config)')
      .option('--from <offsite:name>', FROM_OFFSITE_HELP),
  run: (cli, command) => {
    const request = restoreVmRequest(command.args[0], command.opts<RestoreOptions>());
    return cli.withClient(async (client, config) => {
      checkHypervisorOf(request, config);
      checkOffsiteOf(request, config);
      return waitAndPrint(command, await startRestoreVm(client, config, request), formatRestoreVm);
    });
  },
};

export const restoreDayCommand: CliCommand = {
  name: ['restore', 'day'],
  summary:
    'put a SUPIM day from the store back on the compute host (default: its source folder), SHA-256 checked on ' +
    'arrival; an existing file is listed and left alone unless --overwrite',
  define: (command) =>
    jsonOption(command)
      .argument('<yyyy-ddd>', 'the julian day, e.g. 2026-331')
      .option('--to <path>', 'another folder on the host (default: the day`s source folder)')
      .option('--host <key>', 'another host of the config (default: supim.host)')
      .option('--overwrite', 'replace files that exist there')
      .option(
        '--from <store|restic|offsite:name>',
        'store: the plain day folder; restic: the day`s newest snapshot (store.engine restic; the default ' +
          'there when the plain folder is missing); offsite:NAME: the day`s newest snapshot in that off-site repository',
      ),
  run: (cli, command) => {
    const day = command.args[0] ?? '';
    if (!/^\d{4}-\d{3}$/.test(day)) throw new UsageError('restore day needs a day YYYY-DDD');
    const from = command.opts<RestoreOptions>().from;
    if (from !== undefined) dayRestoreSource(from);
    return cli.withClient(async (client, config) =>
      waitAndPrint(
        command,
        await startRestoreDay(client, config, day, command.opts<RestoreOptions>()),
        formatDayRestore,
      ),
    );
  },
};

export const restoreTestCommand: CliCommand = {
  name: ['restore', 'test'],
  summary:
    'boot the newest stored set of a VM (default: the one tested longest ago) as a throw-away domain without ' +
    'network; passes when the guest shows life; everything it made is removed',
  define: (command) =>
    jsonOption(command).argument('[vm]', 'the VM to test').option('--from <offsite:name>', FROM_OFFSITE_HELP),
  run: (cli, command) => {
    const { offsite } = offsiteOf(command.opts<RestoreOptions>().from);
    return cli.withClient(async (client, config) =>
      waitAndPrint(
        command,
        await startRestoreTest(client, config, command.args[0], undefined, offsite),
        formatRestoreTest,
      ),
    );
  },
};
