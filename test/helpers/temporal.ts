import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import type { Config } from '../../config/schema';
import { createWorker, WORKFLOW_BUNDLE } from '../../worker/create-worker';
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

/**
 * The two workers of a workflow test on a test environment: the built workflows with `remote` activities on
 * the main task queue, `store` activities on the store's; `stop()` shuts both down.
 */
export async function stubActivityWorkers(
  env: TestWorkflowEnvironment,
  queues: { taskQueue: string; storeTaskQueue: string },
  remote: object,
  store: object,
): Promise<{ stop: () => Promise<void> }> {
  const workers = await Promise.all([
    Worker.create({
      connection: env.nativeConnection,
      taskQueue: queues.taskQueue,
      workflowBundle: { codePath: WORKFLOW_BUNDLE },
      activities: remote,
    }),
    Worker.create({ connection: env.nativeConnection, taskQueue: queues.storeTaskQueue, activities: store }),
  ]);
  const running = Promise.all(workers.map((w) => w.run()));
  return {
    stop: async () => {
      for (const w of workers) w.shutdown();
      await running;
    },
  };
}
