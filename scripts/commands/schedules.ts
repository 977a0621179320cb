import type { Client, ScheduleDescription, ScheduleOptions } from '@temporalio/client';
import { ScheduleNotFoundError, ScheduleOverlapPolicy } from '@temporalio/client';
import type { Config } from '../../config/schema';
import { JOB_WORKFLOW_TYPE, JOBS, type Job } from '../../domain/jobs';
import { restoreTestSchedule } from './restore';

/** The dead-man's switch, the VM guardian and the restore test have schedules of their own. */
export type ScheduleName = Job | 'watchdog' | 'guardian' | 'restore-test';

export function scheduleId(job: ScheduleName): string {
  return `cluster-backup-${job}`;
}

/** The schedule appends the scheduled time, e.g. supim-scheduled-2026-11-27T06:00:00Z. */
const WORKFLOW_ID_PREFIX: Record<Job, string> = { daily: 'supim-scheduled', weekly: 'vms-scheduled' };

/** The jobs the config can run: daily needs a supim section, weekly a hypervisor section. */
export function configuredJobs(config: Config): Job[] {
  return JOBS.filter((job) => (job === 'daily' ? config.supim : config.hypervisors.length > 0));
}

/** A housekeeping workflow every few minutes (overlap SKIP: a slow run is never doubled). */
function intervalSchedule(
  config: Config,
  name: 'watchdog' | 'guardian',
  everyMinutes: number,
  action: { workflowType: string; args: unknown[]; workflowId: string },
  catchupWindow: NonNullable<ScheduleOptions['policies']>['catchupWindow'],
): ScheduleOptions {
  return {
    scheduleId: scheduleId(name),
    spec: { intervals: [{ every: `${everyMinutes} minutes` }] },
    action: { type: 'startWorkflow', taskQueue: config.temporal.taskQueue, ...action },
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow },
    state: { paused: false, note: 'managed by cluster-backup schedules apply' },
  };
}

/** The watchdog checks every configured job's last success every few minutes. */
export function desiredWatchdogSchedule(config: Config): ScheduleOptions {
  const action = {
    workflowType: 'backupWatchdog',
    args: [{ jobs: configuredJobs(config) }],
    workflowId: 'watchdog-scheduled',
  };
  return intervalSchedule(config, 'watchdog', config.schedules.watchdog.everyMinutes, action, '1 hour');
}

/** The guardian puts back VMs a weekly run left down, every few minutes (with a hypervisor configured). */
export function desiredGuardianSchedule(config: Config): ScheduleOptions {
  const action = { workflowType: 'vmGuardian', args: [], workflowId: 'vm-guardian-scheduled' };
  return intervalSchedule(config, 'guardian', config.schedules.guardian.everyMinutes, action, '10 minutes');
}

/** What the schedule of a job must be, from config. */
export function desiredSchedule(config: Config, job: Job): ScheduleOptions {
  const s = config.schedules;
  const [hour, minute] = s[job].at.split(':').map(Number) as [number, number];
  return {
    scheduleId: scheduleId(job),
    spec: {
      calendars: [
        { hour, minute, ...(job === 'weekly' ? { dayOfWeek: s.weekly.dayOfWeek } : {}), comment: `${job} backup` },
      ],
      timezone: s.timeZone,
    },
    action: {
      type: 'startWorkflow',
      workflowType: JOB_WORKFLOW_TYPE[job],
      args: [{}],
      taskQueue: config.temporal.taskQueue,
      workflowId: WORKFLOW_ID_PREFIX[job],
    },
    policies: {
      // A run still going (a slow week) is never doubled; a missed run within the window runs once.
      overlap: ScheduleOverlapPolicy.SKIP,
      catchupWindow: `${s.catchupWindowHours} hours`,
    },
    state: { paused: s[job].paused, note: 'managed by cluster-backup schedules apply' },
  };
}

export function firstOf<T>(ranges: readonly { start: T }[] | undefined): T | undefined {
  return ranges?.[0]?.start;
}

/** One weekday, or '' for "every day" (which the server describes as the range SUNDAY-SATURDAY). */
export function singleDay(ranges: readonly { start: string; end?: string }[] | undefined): string {
  const only = ranges?.length === 1 ? ranges[0] : undefined;
  return only && (only.end === undefined || only.end === only.start) ? only.start : '';
}

/** The parts `apply` manages, in one comparable shape, from config or from the server's description. */
function fingerprint(o: {
  hour?: number;
  minute?: number;
  dayOfWeek?: string;
  timezone?: string;
  workflowType?: string;
  taskQueue?: string;
  workflowId?: string;
  overlap?: string;
  catchupMs?: number;
  paused?: boolean;
  everyMs?: number;
  args?: unknown;
}): string {
  return JSON.stringify([
    o.everyMs ?? 0,
    o.args ?? null,
    o.hour ?? 0,
    o.minute ?? 0,
    o.dayOfWeek ?? '',
    o.timezone ?? '',
    o.workflowType,
    o.taskQueue,
    o.workflowId,
    o.overlap,
    o.catchupMs,
    o.paused,
  ]);
}

function fingerprintOfDescription(d: ScheduleDescription): string {
  const cal = d.spec.calendars?.[0];
  const action = d.action as { workflowType?: string; taskQueue?: string; workflowId?: string; args?: unknown[] };
  return fingerprint({
    everyMs: d.spec.intervals?.[0]?.every,
    args: action.args,
    hour: firstOf(cal?.hour),
    minute: firstOf(cal?.minute),
    dayOfWeek: singleDay(cal?.dayOfWeek),
    timezone: d.spec.timezone,
    workflowType: action.workflowType,
    taskQueue: action.taskQueue,
    workflowId: action.workflowId,
    overlap: String(d.policies.overlap),
    catchupMs: d.policies.catchupWindow,
    paused: d.state.paused,
  });
}

function fingerprintOfOptions(o: ScheduleOptions, catchupMs: number, everyMs?: number): string {
  const cal = o.spec.calendars?.[0] as { hour?: number; minute?: number; dayOfWeek?: string } | undefined;
  return fingerprint({
    everyMs,
    args: o.action.args,
    hour: cal?.hour,
    minute: cal?.minute,
    dayOfWeek: cal?.dayOfWeek,
    timezone: o.spec.timezone,
    workflowType: o.action.workflowType as string,
    taskQueue: o.action.taskQueue,
    workflowId: o.action.workflowId,
    overlap: String(o.policies?.overlap),
    catchupMs,
    paused: o.state?.paused ?? false,
  });
}

export type ApplyResult = { job: ScheduleName; scheduleId: string; change: 'created' | 'updated' | 'unchanged' };

/** Creates or updates one schedule per configured job, and the watchdog's; an unchanged config changes nothing. */
export async function applySchedules(client: Client, config: Config): Promise<ApplyResult[]> {
  const results: ApplyResult[] = [];
  const hours = (h: number) => h * 3_600_000;
  const wanted: { job: ScheduleName; desired: ScheduleOptions; catchupMs: number; everyMs?: number }[] = [
    ...configuredJobs(config).map((job) => ({
      job,
      desired: desiredSchedule(config, job),
      catchupMs: hours(config.schedules.catchupWindowHours),
    })),
    {
      job: 'watchdog',
      desired: desiredWatchdogSchedule(config),
      catchupMs: hours(1),
      everyMs: config.schedules.watchdog.everyMinutes * 60_000,
    },
    ...(config.hypervisors.length > 0
      ? [
          {
            job: 'guardian' as const,
            desired: desiredGuardianSchedule(config),
            catchupMs: 10 * 60_000,
            everyMs: config.schedules.guardian.everyMinutes * 60_000,
          },
        ]
      : []),
  ];
  if (config.hypervisors.length > 0 && config.store) {
    wanted.push({
      job: 'restore-test',
      desired: restoreTestSchedule(config),
      catchupMs: hours(config.schedules.catchupWindowHours),
    });
  }
  for (const { job, desired, catchupMs, everyMs } of wanted) {
    const handle = client.schedule.getHandle(desired.scheduleId);
    let current: ScheduleDescription | undefined;
    try {
      current = await handle.describe();
    } catch (err) {
      if (!(err instanceof ScheduleNotFoundError)) throw err;
    }
    if (!current) {
      await client.schedule.create(desired);
      results.push({ job, scheduleId: desired.scheduleId, change: 'created' });
    } else if (fingerprintOfDescription(current) === fingerprintOfOptions(desired, catchupMs, everyMs)) {
      results.push({ job, scheduleId: desired.scheduleId, change: 'unchanged' });
    } else {
      await handle.update(() => ({
        spec: desired.spec,
        action: desired.action,
        policies: desired.policies,
        state: desired.state!,
      }));
      results.push({ job, scheduleId: desired.scheduleId, change: 'updated' });
    }
  }
  return results;
}
