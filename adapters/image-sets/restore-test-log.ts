import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { RestoreTestLog, RestoreTestResult } from '../../domain/restore';

/**
 * The restore tests' memory, in the store beside the VM folders (a dot file: never taken for a VM): the last
 * boot test of each VM. The rotation reads it to pick the VM tested longest ago; `status`, `store verify`
 * and reports show it. A file rather than Temporal's visibility: it lives and is backed up with the sets it
 * speaks of, and reads without a server.
 */
export const RESTORE_TESTS_FILE = '.restore-tests.json';

export async function readRestoreTestLog(storeRoot: string): Promise<RestoreTestLog> {
  try {
    return JSON.parse(await readFile(join(storeRoot, RESTORE_TESTS_FILE), 'utf8')) as RestoreTestLog;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw err;
  }
}

/** Replaces the VM's entry; written through a partial name, so a reader never sees half a file. */
export async function recordRestoreTestResult(storeRoot: string, result: RestoreTestResult): Promise<void> {
  const path = join(storeRoot, RESTORE_TESTS_FILE);
  const log = { ...(await readRestoreTestLog(storeRoot)), [result.vm]: result };
  await writeFile(`${path}.partial`, `${JSON.stringify(log, null, 2)}\n`);
  await rename(`${path}.partial`, path);
}
