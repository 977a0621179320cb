import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkLocalPath } from '../../adapters/restic/restic-paths';
import { blankDayResult, dailyRunOk, resticNote, type DailySettings } from '../../domain/daily-summary';
import { dailyReport } from '../../domain/report';
import { sampleLink } from '../helpers/report-samples';
import { calendarDay } from '../../domain/julian-day';
import { dayRestoreSource } from '../../scripts/commands/restore';

const settings: DailySettings = {
  timeZone: 'UTC',
  daysBack: 1,
  sourceTemplate: '/data/{yyyy}/{ddd}',
  destinationRoot: '/backup',
  verify: 'size',
  heartbeatTimeoutSeconds: 30,
  storeTaskQueue: 'q-store',
};
const day = blankDayResult(calendarDay('2026-11-27'), settings, 'copied');

describe('SUPIM days in restic: notes, the run verdict, arguments', () => {
  it('says what became of the day in the repository, or nothing when it was not tried', () => {
    assert.equal(resticNote(day), undefined);
    assert.equal(
      resticNote({ ...day, restic: { status: 'stored', snapshot: 'ab12cd34', bytesAdded: 2048 } }),
      '2026-331 restic: snapshot ab12cd34, 2048 bytes added',
    );
    assert.equal(
      resticNote({ ...day, restic: { status: 'unchanged', snapshot: 'ab12cd34', bytesAdded: 0 } }),
      '2026-331 restic: unchanged, snapshot ab12cd34 kept (none added)',
    );
    assert.equal(
      resticNote({ ...day, restic: { status: 'failed', reason: 'wrong password' } }),
      '2026-331 restic failed: wrong password',
    );
  });

  it('a failed restic step makes the run not OK; the day keeps its copy status', () => {
    assert.equal(dailyRunOk([day]), true);
    assert.equal(dailyRunOk([{ ...day, restic: { status: 'stored', snapshot: 'ab12cd34', bytesAdded: 1 } }]), true);
    assert.equal(dailyRunOk([{ ...day, restic: { status: 'skipped', reason: 'held' } }]), true);
    assert.equal(dailyRunOk([{ ...day, restic: { status: 'failed', reason: 'x' } }]), false);
  });

  it('the report names the snapshot or the failure', () => {
    const summary = {
      runDate: '2026-11-27',
      timeZone: 'UTC',
      days: [{ ...day, restic: { status: 'failed' as const, reason: 'repository locked' } }],
      ok: false,
      startedAt: '2026-11-27T06:00:00Z',
      finishedAt: '2026-11-27T06:01:00Z',
    };
    const mail = dailyReport({ state: 'completed', summary }, sampleLink('supim-2026-331'), '2026-331');
    assert.match(mail.text, /2026-331 restic failed: repository locked/);
    assert.match(mail.html, /2026-331 restic failed: repository locked/);
  });

  it('refuses paths restic could read as options or as two lines, and unknown restore sources', () => {
    assert.equal(checkLocalPath('path', '/backup/2026/331'), '/backup/2026/331');
    assert.throws(() => checkLocalPath('path', '-r/x'), /not an absolute path/);
    assert.throws(() => checkLocalPath('path', 'backup/2026'), /not an absolute path/);
    assert.throws(() => checkLocalPath('path', '/backup/20\n26'), /newline/);
    assert.deepEqual(dayRestoreSource('restic'), { from: 'restic' });
    assert.deepEqual(dayRestoreSource('offsite:far'), { offsite: 'far' });
    assert.throws(() => dayRestoreSource('s3'), /--from is store, restic or offsite:<name>/);
    assert.throws(() => dayRestoreSource('offsite:../x'), /--from is offsite:<name>/);
  });
});
