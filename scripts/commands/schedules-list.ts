import { ScheduleNotFoundError, type Client, type ScheduleDescription } from '@temporalio/client';
import { BACKUP_RESULT } from '../../domain/search-attributes';
import { formatWallClock } from '../../domain/format';
import { JOBS } from '../../domain/jobs';
import { EXIT, jsonOption, output, type CliCommand } from './command-kit';
import { firstOf, scheduleId, singleDay, type ScheduleName } from './schedules';

export interface ScheduleOverview {
  name: ScheduleName;
  scheduleId: string;
  exists: boolean;
  paused?: boolean;
  /** The spec in words: `daily at 03:00`, `Sundays at 02:00`, `hourly`, `every 15 minutes`. */
  when?: string;
  timeZone?: string;
  /** ISO instant of the next run, and the same as a wall clock in the schedule's zone. */
  next?: string;
  nextLocal?: string;
  last?: { workflowId: string; startedAt: string; result: string };
}

const pad = (n: number | undefined) => String(n ?? 0).padStart(2, '0');

/** The parts of a spec `schedules apply` writes, in words; anything else as Temporal's JSON. */
export function specInWords(spec: ScheduleDescription['spec']): string {
  const every = spec.intervals?.[0]?.every;
  if (every !== undefined) {
    const minutes = Number(every) / 60_000;
    if (minutes === 60) return 'hourly';
    return minutes % 60 === 0 ? `every ${minutes / 60} hours` : `every ${minutes} minutes`;
  }
  const calendar = spec.calendars?.[0];
  if (!calendar) return JSON.stringify(spec);
  const at = `${pad(firstOf(calendar.hour))}:${pad(firstOf(calendar.minute))}`;
  const day = singleDay(calendar.dayOfWeek);
  return day ? `${day[0]}${day.slice(1).toLowerCase()}s at ${at}` : `daily at ${at}`;
}

/** How the run a schedule started last ended: its BackupResult tag, else its status and summary. */
async function lastResult(client: Client, workflowId: string): Promise<string> {
  const handle = client.workflow.getHandle(workflowId);
  const described = await handle.describe();
  const tagged = described.typedSearchAttributes.get(BACKUP_RESULT);
  if (tagged) return tagged;
  if (described.status.name !== 'COMPLETED') return described.status.name.toLowerCase();
  const result = (await handle.result()) as { ok?: boolean } | undefined;
  return result?.ok === false ? 'incomplete' : 'ok';
}

export async function scheduleOverviews(client: Client): Promise<ScheduleOverview[]> {
  const overviews: ScheduleOverview[] = [];
  for (const name of [...JOBS, 'watchdog', 'guardian'] as const) {
    const id = scheduleId(name);
    let d: ScheduleDescription;
    try {
      d = await client.schedule.getHandle(id).describe();
    } catch (err) {
      if (!(err instanceof ScheduleNotFoundError)) throw err;
      overviews.push({ name, scheduleId: id, exists: false });
      continue;
    }
    const timeZone = d.spec.timezone || 'UTC';
    const next = d.info.nextActionTimes[0];
    const recent = d.info.recentActions.at(-1);
    overviews.push({
      name,
      scheduleId: id,
      exists: true,
      paused: d.state.paused,
      when: specInWords(d.spec),
      timeZone,
      ...(next ? { next: next.toISOString(), nextLocal: formatWallClock(next, timeZone) } : {}),
      ...(recent
        ? {
            last: {
              workflowId: recent.action.workflow.workflowId,
              startedAt: recent.takenAt.toISOString(),
              result: await lastResult(client, recent.action.workflow.workflowId).catch(() => 'unknown'),
            },
          }
        : {}),
    });
  }
  return overviews;
}

/** `cluster-backup-daily: daily at 03:00 America/Sao_Paulo, next 2026-11-28 03:00, last: ok (supim-...)` */
export function formatScheduleOverview(s: ScheduleOverview): string {
  if (!s.exists) return `${s.scheduleId}: not created (schedules apply creates it when the config needs it)`;
  const zone = s.when?.startsWith('every') || s.when === 'hourly' ? '' : ` ${s.timeZone}`;
  return (
    `${s.scheduleId}: ${s.paused ? 'PAUSED, ' : ''}${s.when}${zone}` +
    `, next ${s.paused ? '- (paused)' : s.nextLocal ? `${s.nextLocal}${zone ? '' : ` ${s.timeZone}`}` : '-'}` +
    `, last: ${s.last ? `${s.last.result} (${s.last.workflowId})` : 'none yet'}`
  );
}

export const schedulesListCommand: CliCommand = {
  name: ['schedules', 'list'],
  summary: 'each schedule in words: when, paused or not, the next run, how the last one ended',
  define: jsonOption,
  run: (cli, command) =>
    cli.withClient(async (client) => {
      const overviews = await scheduleOverviews(client);
      output(command, overviews, () => overviews.map(formatScheduleOverview));
      return EXIT.ok;
    }),
};
