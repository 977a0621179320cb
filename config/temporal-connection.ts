import { readFileSync } from 'node:fs';
import type { Config } from './schema';

export interface TemporalConnectionSettings {
  address: string;
  namespace: string;
  tls?: {
    serverRootCACertificate?: Buffer;
    clientCertPair?: { crt: Buffer; key: Buffer };
    serverNameOverride?: string;
  };
  apiKey?: string;
}

/**
 * How the worker and the CLI reach Temporal: the config's temporal section, with the standard TEMPORAL_*
 * environment variables taking precedence, so the same config runs against a dev server or a cluster.
 */
export function temporalConnection(config: Config, env: NodeJS.ProcessEnv = process.env): TemporalConnectionSettings {
  const t = config.temporal;
  const apiKey = env.TEMPORAL_API_KEY ?? (t.apiKeyFile ? readFileSync(t.apiKeyFile, 'utf8').trim() : undefined);
  return {
    address: env.TEMPORAL_ADDRESS || t.address,
    namespace: env.TEMPORAL_NAMESPACE || t.namespace,
    ...(t.tls
      ? {
          tls: {
            ...(t.tls.caFile ? { serverRootCACertificate: readFileSync(t.tls.caFile) } : {}),
            ...(t.tls.certFile && t.tls.keyFile
              ? { clientCertPair: { crt: readFileSync(t.tls.certFile), key: readFileSync(t.tls.keyFile) } }
              : {}),
            ...(t.tls.serverName ? { serverNameOverride: t.tls.serverName } : {}),
          },
        }
      : {}),
    ...(apiKey ? { apiKey } : {}),
  };
}

/** The task queue of the activities bound to the backup store's disk (see temporal.storeTaskQueue). */
export function storeTaskQueue(config: Config): string {
  return config.temporal.storeTaskQueue ?? `${config.temporal.taskQueue}-store`;
}
