import { statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { makeFolders, type StoreFileMode } from './file-mode';

/**
 * Where a day's streamed files are written before they get their real names:
 * `<destinationRoot>/.cluster-backup/staging/<yyyy-ddd>/<lane>/<n>`, one folder per writer lane. Creating a
 * file locks its folder (and on ext4 allocating its inode can take most of a millisecond), so lanes in
 * folders of their own create files side by side where one folder would take them one at a time. Numbered
 * names: nothing the source host sends ever names a staging file. Nothing in it carries a real name; what a
 * crash leaves is removed by the day's next copy (under the day's lock).
 */
export class DayStaging {
  private constructor(
    private readonly folder: string,
    readonly lanes: number,
  ) {}

  /**
   * Clears what an earlier attempt left and prepares `lanes` folders; undefined for no lanes, or when the
   * staging folder is on another file system than the day (a rename cannot move a file across): then files
   * are staged beside their real names.
   */
  static async prepare(
    destinationRoot: string,
    dayLabel: string,
    destination: string,
    lanes: number,
    mode: StoreFileMode,
  ): Promise<DayStaging | undefined> {
    if (!/^\d{4}-\d{3}$/.test(dayLabel)) throw new Error(`bad day label ${JSON.stringify(dayLabel)}`);
    const folder = join(destinationRoot, '.cluster-backup', 'staging', dayLabel);
    await rm(folder, { recursive: true, force: true });
    if (lanes === 0) return undefined;
    for (let lane = 0; lane < lanes; lane++) await makeFolders(join(folder, String(lane)), mode);
    if (statSync(folder).dev !== statSync(destination).dev) {
      await rm(folder, { recursive: true, force: true });
      return undefined;
    }
    return new DayStaging(folder, lanes);
  }

  pathFor(lane: number, n: number): string {
    return join(this.folder, String(lane), String(n));
  }

  /** Removes the staging folder and anything left in it (files that were not committed). */
  async remove(): Promise<void> {
    await rm(this.folder, { recursive: true, force: true });
  }
}
