import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { PROJECT_ROOT } from '../../scripts/sandbox/temporal-dev-server';

/** Where the histories that `npm test` replays are kept (committed). */
export const REPLAY_DIR = join(PROJECT_ROOT, 'test', 'replay');

/**
 * With CAPTURE_HISTORIES=1, saves the run's event history as test/replay/<name>.json: run the tests that way
 * once when a workflow change is meant to be incompatible (or a patched() is retired), and commit the files.
 */
export async function captureHistory(handle: WorkflowHandle, name: string): Promise<void> {
  if (!process.env.CAPTURE_HISTORIES) return;
  writeFileSync(join(REPLAY_DIR, `${name}.json`), historyToJSON(await handle.fetchHistory()));
}
