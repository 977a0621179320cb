import { Client, Connection } from '@temporalio/client';
import { Runtime } from '@temporalio/worker';
import { installBackupMetrics, type BackupMetrics } from '../adapters/metrics/backup-metrics';
import { loadConfig } from '../config/load';
import type { Config } from '../config/schema';
import { temporalConnection } from '../adapters/temporal/temporal-connection';
import { createWorker } from './create-worker';

/** Runs reported by another worker, and the store's free space, reach this worker's gauges within this. */
const METRICS_REFRESH_MS = 60_000;

/**
 * Keeps the backup gauges current: read back from Temporal at start (a restarted worker shows the last
 * runs at once) and every minute after, and the store measured on the same beat.
 */
function refreshMetrics(config: Config, metrics: BackupMetrics): { stop: () => Promise<void> } {
  const { namespace, ...connectionOptions } = temporalConnection(config);
  let client: Promise<Client> | undefined;
  // A server not up yet is tried again on the next beat.
  const connected = () =>
    (client ??= Connection.connect(connectionOptions).then(
      (connection) => new Client({ connection, namespace }),
      (err: unknown) => {
        client = undefined;
        throw err;
      },
    ));
  let running: Promise<void> | undefined;
  const refresh = () => {
    if (running) return; // a slow Temporal: skip a beat rather than pile up
    running = (async () => {
      await metrics.refreshStores(config).catch((err: unknown) => console.warn(`metrics: store usage: ${String(err)}`));
      await metrics
        .refreshFromTemporal(await connected())
        .catch((err: unknown) => console.warn(`metrics: last runs: ${String(err)}`));
    })()
      .catch((err: unknown) => console.warn(`metrics: ${String(err)}`))
      .finally(() => (running = undefined));
  };
  refresh();
  const timer = setInterval(refresh, METRICS_REFRESH_MS);
  timer.unref();
  return {
    stop: async () => {
      clearInterval(timer);
      await running;
      await (await client?.catch(() => undefined))?.connection.close();
    },
  };
}

/** Runs the worker until SIGINT/SIGTERM. */
export async function runWorker(configFile: string): Promise<void> {
  const config = loadConfig(configFile);
  let metrics: { stop: () => Promise<void> } | undefined;
  if (config.worker.metricsBindAddress) {
    // Must come before the first connection: the runtime is created once per process.
    Runtime.install({
      telemetryOptions: { metrics: { prometheus: { bindAddress: config.worker.metricsBindAddress } } },
    });
    metrics = refreshMetrics(config, installBackupMetrics(Runtime.instance().metricMeter));
  }
  const worker = await createWorker(config);
  const { address, namespace } = temporalConnection(config);
  console.log(`worker: task queues ${worker.taskQueues.join(', ')} on ${address} (${namespace})`);
  try {
    await worker.run();
  } finally {
    await metrics?.stop();
    await worker.connection.close();
  }
}
