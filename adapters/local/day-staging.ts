import { createHash } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { makeFolders, type StoreFileMode } from './file-mode';

const RESUME = 'resume';

/** The resumable partial file's name for a file of the day: nothing a source name can make collide. */
function resumeName(relative: string): string {
  return createHash('sha256').update(relative).digest('hex');
}

/**
 * Where a day's files are written before they get their real names, outside the day's folder (whose names
 * are the source's: a partial file must never take, or be taken for, a real file's name):
 * `<destinationRoot>/.cluster-backup/staging/<yyyy-ddd>/`, holding
 * - `<lane>/<n>`: streamed files, one folder per writer lane. Creating a file locks its folder (and on ext4
 *   allocating its inode can take most of a millisecond), so lanes in folders of their own create files side
 *   by side where one folder would take them one at a time. Cleared by every attempt.
 * - `resume/<sha256 of the relative path>`: files fetched one by one, kept while a retry may resume them.
 * Numbered and hashed names: nothing the source host sends ever names a staging file. What a crash leaves is
 * removed by the day's next copy (under the day's lock). When that folder is on another file system than the
 * day (a rename cannot move a file across), `<the day's parent>/.cluster-backup-staging/<yyyy-ddd>/` is used.
 */
export class DayStaging {
  private constructor(
    private readonly folder: string,
    readonly lanes: number,
  ) {}

  /**
   * Clears what an earlier attempt left (but the partial files of `resumable`, relative paths a retry
   * resumes) and prepares `lanes` folders.
   */
  static async prepare(
    destinationRoot: string,
    dayLabel: string,
    destination: string,
    lanes: number,
    mode: StoreFileMode,
    resumable: Iterable<string> = [],
  ): Promise<DayStaging> {
    if (!/^\d{4}-\d{3}$/.test(dayLabel)) throw new Error(`bad day label ${JSON.stringify(dayLabel)}`);
    const candidates = [
      join(destinationRoot, '.cluster-backup', 'staging', dayLabel),
      join(dirname(destination), '.cluster-backup-staging', dayLabel),
    ];
    for (const folder of candidates) {
      await makeFolders(join(folder, RESUME), mode);
      if (statSync(folder).dev !== statSync(destination).dev) {
        await rm(folder, { recursive: true, force: true });
        continue;
      }
      const staging = new DayStaging(folder, lanes);
      await staging.clear(resumable);
      for (let lane = 0; lane < lanes; lane++) await makeFolders(join(folder, String(lane)), mode);
      return staging;
    }
    throw new Error(
      `cannot stage the files of ${dayLabel}: neither ${candidates.join(' nor ')} is on the file system of ` +
        `${destination} (a rename could not move them into place)`,
    );
  }

  pathFor(lane: number, n: number): string {
    return join(this.folder, String(lane), String(n));
  }

  /** Where the file at `relative` in the day is fetched to, the same in every attempt (resumable). */
  resumePathFor(relative: string): string {
    return join(this.folder, RESUME, resumeName(relative));
  }

  /**
   * Removes the staging folder and anything left in it (files that were not committed), but the partial
   * files of `resumable`.
   */
  async remove(resumable: Iterable<string> = []): Promise<void> {
    const kept = await this.clear(resumable);
    if (kept === 0) await rm(this.folder, { recursive: true, force: true });
  }

  /** Removes the lanes and every partial file but those of `resumable`; returns how many were kept. */
  private async clear(resumable: Iterable<string>): Promise<number> {
    const keep = new Set([...resumable].map(resumeName));
    for (const name of readdirSync(this.folder))
      if (name !== RESUME) await rm(join(this.folder, name), { recursive: true, force: true });
    let kept = 0;
    for (const name of readdirSync(join(this.folder, RESUME))) {
      if (keep.has(name)) kept += 1;
      else await rm(join(this.folder, RESUME, name), { recursive: true, force: true });
    }
    return kept;
  }
}
