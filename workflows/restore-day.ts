import { blankDayRestore, type DayRestoreRequest, type DayRestoreResult } from '../domain/restore';
import { failureText } from './failure-text';
import { getRestoreSettings, reportRestore, restoreActivities } from './restore-activities';

/**
 * A SUPIM day from the backup store back to the compute host (or another configured host and folder):
 * every file pushed, SHA-256 checked on arrival, renamed into place with its mtime; files already there
 * are listed and left alone unless `overwrite`. One activity on the store's queue, resumed from its
 * heartbeats after a crash (files done are not sent again).
 */
export async function restoreDay(request: DayRestoreRequest): Promise<DayRestoreResult> {
  const startedAt = new Date().toISOString();
  let result = blankDayRestore(request, startedAt);
  try {
    const settings = await getRestoreSettings();
    const { storeLong } = restoreActivities(settings, `restore day ${request.day}`);
    result = await storeLong.restoreSupimDay(request);
  } catch (err) {
    result.reason = failureText(err);
    result.finishedAt = new Date().toISOString();
  } finally {
    await reportRestore({ kind: 'day', result });
  }
  return result;
}
