import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfig } from '../../config/load';
import {
  blankDayResult,
  dailyRunOk,
  dayHasNoData,
  escalateNotYet,
  expectedByFor,
  type DailySettings,
} from '../../domain/daily-summary';
import { formatWallClock } from '../../domain/format';
import { calendarDay } from '../../domain/julian-day';
import { dailyReport } from '../../domain/report';

const settings: DailySettings = {
  timeZone: 'America/Sao_Paulo',
  daysBack: 2,
  sourceTemplate: '/data/{yyyy}/{ddd}',
  destinationRoot: '/backup',
  verify: 'size',
  heartbeatTimeoutSeconds: 30,
  storeTaskQueue: 'q',
};
const notYet = (iso: string) => ({
  ...blankDayResult(calendarDay(iso), settings, 'not-yet'),
  reason: 'source folder does not exist yet',
});
const link = { namespace: 'default', workflowId: 'supim-2026-100', runId: 'r' };

describe('days that do not come', () => {
  it('reads the run clock in the configured zone', () => {
    assert.equal(formatWallClock(new Date('2026-04-10T02:30:00Z'), 'America/Sao_Paulo'), '2026-04-09 23:30');
    assert.equal(expectedByFor(calendarDay('2026-12-31'), '+1 06:00'), '2027-01-01 06:00');
    assert.equal(expectedByFor(calendarDay('2026-04-09'), '22:00'), '2026-04-09 22:00');
  });

  it('calls a day missing on its last run in the window, late past expectedBy, else leaves it not-yet', () => {
    const day = notYet('2026-04-08');
    const base = { localNow: '2026-04-10 03:00' };
    assert.equal(escalateNotYet(day, { ...base, lastInWindow: false }).status, 'not-yet');
    const missing = escalateNotYet(day, { ...base, lastInWindow: true });
    assert.equal(missing.status, 'missing');
    assert.match(missing.reason!, /last run in the window/);
    assert.equal(escalateNotYet(day, { ...base, lastInWindow: false, expectedBy: '+1 06:00' }).status, 'late');
    assert.equal(escalateNotYet(day, { ...base, lastInWindow: false, expectedBy: '+2 06:00' }).status, 'not-yet');
    const copied = { ...day, status: 'copied' as const };
    assert.equal(escalateNotYet(copied, { ...base, lastInWindow: true }), copied);
  });

  it('makes the run not OK and names missing and late days in the subject', () => {
    const days = [
      notYet('2026-04-10'),
      { ...notYet('2026-04-09'), status: 'late' as const, reason: 'not there; expected by 2026-04-10 06:00' },
      { ...notYet('2026-04-08'), status: 'missing' as const, reason: 'not there; last run in the window' },
    ];
    assert.equal(dailyRunOk(days), false);
    assert.ok(days.every(dayHasNoData));
    const summary = { runDate: '2026-04-10', timeZone: 'UTC', days, ok: false, startedAt: '', finishedAt: '' };
    const report = dailyReport({ state: 'completed', summary }, link, '2026-100');
    assert.equal(
      report.subject,
      '[cluster-backup] FAILED daily 2026-100: 2026-099 LATE (not there; expected by 2026-04-10 06:00); ' +
        '2026-098 MISSING (not there; last run in the window)',
    );
  });

  it('names the files a day could not copy in the report', () => {
    const failed = {
      ...blankDayResult(calendarDay('2026-04-10'), settings, 'failed'),
      reason: '1 file(s) could not be copied: a.dat: permission denied',
      failedFiles: [{ path: 'a.dat', reason: 'permission denied' }],
      filesInSource: 3,
    };
    const summary = {
      runDate: '2026-04-10',
      timeZone: 'UTC',
      days: [failed],
      ok: false,
      startedAt: '',
      finishedAt: '',
    };
    const report = dailyReport({ state: 'completed', summary }, link, '2026-100');
    assert.match(report.text, /2026-100: NOT copied: a\.dat: permission denied/);
    assert.equal(dayHasNoData(failed), false);
  });
});

describe('config: expectedBy and permissions', () => {
  const base = {
    hosts: { c: { host: '127.0.0.2', user: 'u', privateKeyFile: '/k', knownHostsFile: '/kh' } },
    supim: { host: 'c', sourceTemplate: '/d/{yyyy}/{ddd}', destinationRoot: '/b' },
    mail: { outbox: '/o' },
  };
  it('takes "+N HH:MM" and octal modes as quoted strings, and names the field when wrong', () => {
    const config = parseConfig(
      {
        ...base,
        supim: { ...base.supim, expectedBy: '+1 06:00' },
        permissions: { fileMode: '0640', folderMode: '750', group: 'backup' },
      },
      't',
      '/',
    );
    assert.equal(config.supim!.expectedBy, '+1 06:00');
    assert.equal(config.permissions.fileMode, '0640');
    assert.deepEqual(parseConfig(base, 't', '/').permissions, { fileMode: '0600', folderMode: '0700' });
    assert.throws(() => parseConfig({ ...base, supim: { ...base.supim, expectedBy: '6am' } }, 't', '/'), /expectedBy/);
    assert.throws(() => parseConfig({ ...base, permissions: { fileMode: 640 } }, 't', '/'), /fileMode.*quoted octal/);
  });
});
