import { isCancellation, patched, setCurrentDetails, workflowInfo } from '@temporalio/workflow';
import {
  blankDayResult,
  dailyRunOk,
  escalateNotYet,
  type DailySettings,
  type DailySummary,
  type DayRestic,
  type DayResult,
} from '../domain/daily-summary';
import { formatWallClock } from '../domain/format';
import { calendarDay, isoDateInZone, julianDaysEndingOn } from '../domain/julian-day';
import { dailyOffsiteRequest } from '../domain/offsite';
import { remoteActivities, storeActivities } from './activity-proxies';
import { failureText } from './failure-text';
import { copyOffsite } from './offsite-copy';
import { reportedRun } from './reported-run';

export interface DailySupimInput {
  /** YYYY-MM-DD; default: the day the workflow started, in the configured time zone. */
  date?: string;
}

const { getDailySettings } = remoteActivities({
  startToCloseTimeout: '1 minute',
  retry: { maximumAttempts: 5 },
});

function dayCopyActivities(settings: DailySettings) {
  // The copy writes to the backup store's disk: only the backup host's workers take it.
  return storeActivities(settings.storeTaskQueue, {
    // A large day over a slow link may take hours; liveness comes from heartbeats, not from this bound.
    startToCloseTimeout: '12 hours',
    heartbeatTimeout: `${settings.heartbeatTimeoutSeconds} seconds`,
    retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumInterval: '5 minutes', maximumAttempts: 8 },
  });
}

function dayResticActivities(settings: DailySettings) {
  // Reads the store's disk and writes the repository beside it: the backup host's workers only.
  return storeActivities(settings.storeTaskQueue, {
    startToCloseTimeout: '6 hours',
    heartbeatTimeout: `${settings.heartbeatTimeoutSeconds} seconds`,
    // A lock held by another restic run is retried; a wrong password or an exposed password file is not.
    retry: { initialInterval: '10 seconds', backoffCoefficient: 2, maximumInterval: '2 minutes', maximumAttempts: 4 },
  });
}

/** Copies today's and the previous days' SUPIM-DAVS outputs into the backup store, day by day, then reports. */
export async function dailySupimBackup(input: DailySupimInput = {}): Promise<DailySummary> {
  return reportedRun<DailySummary>('daily', async (run) => {
    if (input.date) run.named(calendarDay(input.date).label);
    const startedAt = new Date().toISOString();
    const settings = await getDailySettings();
    const runDate = input.date ?? isoDateInZone(workflowInfo().startTime, settings.timeZone);
    run.named(calendarDay(runDate).label);
    const { backupSupimDay } = dayCopyActivities(settings);
    // Only runs whose settings ask for it (store.engine restic; absent in older histories) take this path.
    const resticDays = settings.resticDays === true && patched('restic-daily-days');
    const { storeSupimDayInRestic } = dayResticActivities(settings);
    /** A complete day into the repository; its failure is reported, and the plain copy stands. */
    const intoRestic = async (result: DayResult): Promise<DayResult> => {
      if (!resticDays || (result.status !== 'copied' && result.status !== 'complete')) return result;
      setCurrentDetails(`day ${result.day.label} into the restic repository`);
      let restic: DayRestic;
      try {
        restic = await storeSupimDayInRestic.executeWithOptions({ summary: `restic day ${result.day.label}` }, [
          result.day,
          result.status,
        ]);
      } catch (err) {
        if (isCancellation(err)) throw err;
        restic = { status: 'failed', reason: failureText(err) };
      }
      return { ...result, restic };
    };

    const results: DayResult[] = [];
    const days = julianDaysEndingOn(runDate, settings.daysBack);
    for (const [i, day] of days.entries()) {
      const what = `day ${day.label} (${day.isoDate})`;
      setCurrentDetails(`copying ${what}, ${i + 1} of ${days.length}`);
      try {
        const result = await backupSupimDay.executeWithOptions({ summary: `SUPIM ${what}` }, [day]);
        // The oldest day leaves the window with this run: if it is still not there, nothing will copy it.
        const when = {
          lastInWindow: i === days.length - 1,
          localNow: formatWallClock(new Date(), settings.timeZone),
          expectedBy: settings.expectedBy,
        };
        results.push(await intoRestic(escalateNotYet(result, when)));
      } catch (err) {
        if (isCancellation(err)) throw err;
        // One day's failure must not stop the others; the summary carries it.
        results.push({ ...blankDayResult(day, settings, 'failed'), reason: failureText(err) });
      }
    }
    // The days now in the repository (new or already there) go off-site; a copy behind never fails the run.
    const inRepository = results.filter((r) => r.restic?.status === 'stored' || r.restic?.status === 'unchanged');
    const offsite =
      inRepository.length && patched('offsite-copy-daily')
        ? await copyOffsite(dailyOffsiteRequest(inRepository.map((r) => r.day.label)))
        : [];
    setCurrentDetails(`done: ${results.map((r) => `${r.day.label} ${r.status}`).join(', ')}`);
    return {
      runDate,
      timeZone: settings.timeZone,
      days: results,
      ok: dailyRunOk(results),
      ...(offsite.length ? { offsite } : {}),
      startedAt,
      finishedAt: new Date().toISOString(),
    };
  });
}
