import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { LockFile } from '../run-lock';

/**
 * The lock of one SUPIM day in the store (`<destinationRoot>/.cluster-backup/locks/<yyyy-ddd>.json`): two
 * daily runs whose windows overlap never copy the same day at once.
 */
export function dayLockFile(destinationRoot: string, dayLabel: string): LockFile {
  if (!/^\d{4}-\d{3}$/.test(dayLabel)) throw new Error(`bad day label ${JSON.stringify(dayLabel)}`);
  const path = join(destinationRoot, '.cluster-backup', 'locks', `${dayLabel}.json`);
  return {
    create: async (content) => {
      await mkdir(dirname(path), { recursive: true, mode: 0o700 });
      try {
        const file = await open(path, 'wx', 0o600);
        await file.writeFile(content);
        await file.close();
        return true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
        throw err;
      }
    },
    read: () =>
      readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return undefined;
        throw err;
      }),
    replace: async (content) => {
      const tmp = `${path}.tmp`;
      const file = await open(tmp, 'w', 0o600);
      await file.writeFile(content);
      await file.close();
      await rename(tmp, path);
    },
    remove: () => rm(path, { force: true }),
  };
}
