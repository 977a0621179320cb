import { randomBytes } from 'node:crypto';
import { mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { CalendarDay } from '../../domain/julian-day';
import { renderPathTemplate } from '../../domain/path-template';

/** File names shaped like SUPIM-DAVS outputs: one file per hour and quantity, plus a run log. */
export function supimFileNames(day: CalendarDay): string[] {
  const stamp = `${day.year}${String(day.dayOfYear).padStart(3, '0')}`;
  const names = ['supim_run.log', 'input/params.nml'];
  for (const quantity of ['ne', 'te', 'ti']) {
    for (let hour = 0; hour < 24; hour += 6)
      names.push(`output/${quantity}_${stamp}_${String(hour).padStart(2, '0')}00.dat`);
  }
  return names;
}

export interface GeneratedDay {
  folder: string;
  files: string[];
  bytes: number;
}

/** Writes a day of SUPIM-like outputs under the template's folder, with mtimes in the past so the day counts as settled. */
export function writeSupimDay(
  template: string,
  day: CalendarDay,
  options: { bytesPerFile?: number; ageSeconds?: number } = {},
): GeneratedDay {
  const folder = renderPathTemplate(template, day);
  const bytesPerFile = options.bytesPerFile ?? 64 * 1024;
  const when = Date.now() / 1000 - (options.ageSeconds ?? 3600);
  const files = supimFileNames(day);
  for (const name of files) {
    const path = join(folder, name);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, randomBytes(bytesPerFile));
    utimesSync(path, when, when);
  }
  return { folder, files, bytes: files.length * bytesPerFile };
}
