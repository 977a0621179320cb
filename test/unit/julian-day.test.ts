import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { calendarDay, isoDateInZone, julianDaysEndingOn } from '../../domain/julian-day';

const labels = (isoDate: string, back: number) => julianDaysEndingOn(isoDate, back).map((d) => d.label);

describe('julian days', () => {
  it('numbers days of the year from 001', () => {
    assert.equal(calendarDay('2026-01-01').label, '2026-001');
    assert.equal(calendarDay('2026-11-27').label, '2026-331');
    assert.equal(calendarDay('2026-12-31').label, '2026-365');
  });

  it('counts 366 days in leap years, including century rules', () => {
    assert.equal(calendarDay('2024-12-31').label, '2024-366');
    assert.equal(calendarDay('2024-02-29').label, '2024-060');
    assert.equal(calendarDay('2024-03-01').label, '2024-061');
    assert.equal(calendarDay('2023-03-01').label, '2023-060');
    assert.equal(calendarDay('2000-12-31').label, '2000-366');
    assert.equal(calendarDay('2100-12-31').label, '2100-365');
  });

  it('crosses year boundaries backwards', () => {
    assert.deepEqual(labels('2024-01-01', 2), ['2024-001', '2023-365', '2023-364']);
    assert.deepEqual(labels('2025-01-01', 2), ['2025-001', '2024-366', '2024-365']);
    assert.deepEqual(labels('2025-01-02', 2), ['2025-002', '2025-001', '2024-366']);
  });

  it('returns the date first and then the days before it', () => {
    const days = julianDaysEndingOn('2026-03-01', 2);
    assert.deepEqual(
      days.map((d) => d.isoDate),
      ['2026-03-01', '2026-02-28', '2026-02-27'],
    );
    assert.deepEqual(days[0], {
      year: 2026,
      month: 3,
      dayOfMonth: 1,
      dayOfYear: 60,
      isoDate: '2026-03-01',
      label: '2026-060',
    });
  });

  it('refuses impossible dates and bad day counts', () => {
    assert.throws(() => calendarDay('2023-02-29'), /no such calendar date/);
    assert.throws(() => calendarDay('2026-13-01'), /no such calendar date/);
    assert.throws(() => calendarDay('27/11/2026'), /YYYY-MM-DD/);
    assert.throws(() => julianDaysEndingOn('2026-01-01', -1), /daysBack/);
  });

  it('takes the calendar date in the configured zone, not UTC', () => {
    // 02:30 UTC on 1 Jan is still 31 Dec in Sao Paulo (UTC-3).
    const instant = new Date('2025-01-01T02:30:00Z');
    assert.equal(isoDateInZone(instant, 'America/Sao_Paulo'), '2024-12-31');
    assert.equal(isoDateInZone(instant, 'UTC'), '2025-01-01');
    assert.equal(isoDateInZone(instant, 'Asia/Tokyo'), '2025-01-01');
  });

  it('does not depend on the time zone the process runs in', () => {
    // Every date of four years, compared with UTC arithmetic done independently.
    const start = Date.UTC(2023, 0, 1);
    for (let i = 0; i < 4 * 366; i++) {
      const utc = new Date(start + i * 86_400_000);
      const iso = utc.toISOString().slice(0, 10);
      const doy = Math.round((utc.getTime() - Date.UTC(utc.getUTCFullYear(), 0, 1)) / 86_400_000) + 1;
      assert.equal(calendarDay(iso).dayOfYear, doy, iso);
    }
  });
});
