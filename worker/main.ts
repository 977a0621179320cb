import { Runtime } from '@temporalio/worker';
import { loadConfig } from '../config/load';
import { temporalConnection } from '../config/temporal-connection';
import { createWorker } from './create-worker';

/** Runs the worker until SIGINT/SIGTERM. */
export async function runWorker(configFile: string): Promise<void> {
  const config = loadConfig(configFile);
  if (config.worker.metricsBindAddress) {
    // Must come before the first connection: the runtime is created once per process.
    Runtime.install({
      telemetryOptions: { metrics: { prometheus: { bindAddress: config.worker.metricsBindAddress } } },
    });
  }
  const { worker, connection } = await createWorker(config);
  console.log(
    `worker: task queue ${config.temporal.taskQueue} on ${temporalConnection(config).address} (${temporalConnection(config).namespace})`,
  );
  try {
    await worker.run();
  } finally {
    await connection.close();
  }
}
