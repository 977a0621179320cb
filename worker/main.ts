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
  const worker = await createWorker(config);
  const { address, namespace } = temporalConnection(config);
  console.log(`worker: task queues ${worker.taskQueues.join(', ')} on ${address} (${namespace})`);
  try {
    await worker.run();
  } finally {
    await worker.connection.close();
  }
}
