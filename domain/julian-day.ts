/**
 * Calendar arithmetic for "julian day" (day-of-year) folders, deterministic and safe inside workflows.
 *
 * Dates are handled as local-noon Date objects: date-fns works in the process's local zone, and noon
 * can never be moved into a neighbouring day by a daylight-saving shift, whatever zone the worker runs in.
 */
import { getDayOfYear, isValid, subDays } from 'date-fns';

export interface CalendarDay {
  year: number;
  month: number; // 1-12
  dayOfMonth: number; // 1-31
  dayOfYear: number; // 1-366
  /** ISO date, e.g. 2026-11-27 */
  isoDate: string;
  /** year-day label, e.g. 2026-331 */
  label: string;
}

const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

function toLocalNoon(isoDate: string): Date {
  const match = ISO_DATE.exec(isoDate);
  if (!match) throw new Error(`not a date (want YYYY-MM-DD): ${JSON.stringify(isoDate)}`);
  const [year, month, day] = [Number(match[1]), Number(match[2]), Number(match[3])];
  const date = new Date(year, month - 1, day, 12);
  if (!isValid(date) || date.getFullYear() !== year || date.getMonth() !== month - 1 || date.getDate() !== day) {
    throw new Error(`no such calendar date: ${isoDate}`);
  }
  return date;
}

function fromLocalNoon(date: Date): CalendarDay {
  const year = date.getFullYear();
  const month = date.getMonth() + 1;
  const dayOfMonth = date.getDate();
  const dayOfYear = getDayOfYear(date);
  const pad = (n: number, width: number) => String(n).padStart(width, '0');
  return {
    year,
    month,
    dayOfMonth,
    dayOfYear,
    isoDate: `${pad(year, 4)}-${pad(month, 2)}-${pad(dayOfMonth, 2)}`,
    label: `${pad(year, 4)}-${pad(dayOfYear, 3)}`,
  };
}

export function calendarDay(isoDate: string): CalendarDay {
  return fromLocalNoon(toLocalNoon(isoDate));
}

/** The given date first, then the `daysBack` days before it. */
export function julianDaysEndingOn(isoDate: string, daysBack: number): CalendarDay[] {
  if (!Number.isInteger(daysBack) || daysBack < 0)
    throw new Error(`daysBack must be a whole number >= 0, got ${daysBack}`);
  const end = toLocalNoon(isoDate);
  return Array.from({ length: daysBack + 1 }, (_, i) => fromLocalNoon(subDays(end, i)));
}

/** The calendar date (YYYY-MM-DD) that an instant falls on in an IANA time zone. */
export function isoDateInZone(instant: Date, timeZone: string): string {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
  }).formatToParts(instant);
  const part = (type: string) => parts.find((p) => p.type === type)?.value ?? '';
  return `${part('year')}-${part('month')}-${part('day')}`;
}

export function isValidTimeZone(timeZone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone });
    return true;
  } catch {
    return false;
  }
}
