import { DefaultLogger, Runtime } from '@temporalio/worker';
import type { Config } from '../../config/schema';
import { createWorker } from '../../worker/create-worker';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDevServer, type DevServer, type DevServerOptions } from '../../scripts/sandbox/temporal-dev-server';

/** Worker logs at WARN in tests: the test output should show failures, not every state change. */
export function quietWorkerLogs(): void {
  Runtime.install({ logger: new DefaultLogger('WARN') });
}

/** A real `temporal server start-dev` (the pinned binary from .venv, never a download) for one test file. */
export async function testDevServer(
  options: Pick<DevServerOptions, 'searchAttributes'> = {},
): Promise<DevServer & { dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'cluster-backup-temporal-'));
  const server = await startDevServer({
    dbFile: join(dir, 'temporal.db'),
    logFile: join(dir, 'temporal.log'),
    ...options,
  });
  return {
    ...server,
    dir,
    stop: async () => {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The real worker, in this process, until `stop()`. */
export async function inProcessWorker(config: Config): Promise<{ stop: () => Promise<void> }> {
  const worker = await createWorker(config);
  const running = worker.run();
  return {
    stop: async () => {
      worker.shutdown();
      await running;
      await worker.connection.close();
    },
  };
}
