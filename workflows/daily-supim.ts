import { isCancellation, setCurrentDetails, workflowInfo } from '@temporalio/workflow';
import {
  blankDayResult,
  dailyRunOk,
  escalateNotYet,
  type DailySettings,
  type DailySummary,
  type DayResult,
} from '../domain/daily-summary';
import { formatWallClock } from '../domain/format';
import { calendarDay, isoDateInZone, julianDaysEndingOn } from '../domain/julian-day';
import { remoteActivities, storeActivities } from './activity-proxies';
import { failureText } from './failure-text';
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

/** Copies today's and the previous days' SUPIM-DAVS outputs into the backup store, day by day, then reports. */
export async function dailySupimBackup(input: DailySupimInput = {}): Promise<DailySummary> {
  return reportedRun<DailySummary>('daily', async (run) => {
    if (input.date) run.named(calendarDay(input.date).label);
    const startedAt = new Date().toISOString();
    const settings = await getDailySettings();
    const runDate = input.date ?? isoDateInZone(workflowInfo().startTime, settings.timeZone);
    run.named(calendarDay(runDate).label);
    const { backupSupimDay } = dayCopyActivities(settings);

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
        results.push(escalateNotYet(result, when));
      } catch (err) {
        if (isCancellation(err)) throw err;
        // One day's failure must not stop the others; the summary carries it.
        results.push({ ...blankDayResult(day, settings, 'failed'), reason: failureText(err) });
      }
    }
    setCurrentDetails(`done: ${results.map((r) => `${r.day.label} ${r.status}`).join(', ')}`);
    return {
      runDate,
      timeZone: settings.timeZone,
      days: results,
      ok: dailyRunOk(results),
      startedAt,
      finishedAt: new Date().toISOString(),
    };
  });
}
