import { readFileSync } from 'node:fs';
import type { TLSConfig } from '@temporalio/common/lib/internal-non-workflow';
import { loadClientConnectConfig } from '@temporalio/envconfig';
import type { Config } from './schema';

export const DEFAULT_TEMPORAL_ADDRESS = '127.0.0.1:7233';
export const DEFAULT_TEMPORAL_NAMESPACE = 'default';

/** Where a connection setting came from, lowest precedence first (see temporalConnection). */
export type SettingSource = 'default' | 'Temporal profile' | 'environment' | 'config file';

export interface TemporalConnectionSettings {
  address: string;
  namespace: string;
  tls?: TLSConfig | boolean;
  apiKey?: string;
  /** gRPC headers from the Temporal profile or TEMPORAL_GRPC_META_*. */
  metadata?: Record<string, string>;
}

/** For `config check` and logs: which layer decided each setting (never the secrets themselves). */
export interface ConnectionSources {
  address: SettingSource;
  namespace: SettingSource;
  tls: SettingSource;
  apiKey: SettingSource;
}

/**
 * How the worker and the CLI reach Temporal. Layers, each over the one before:
 * 1. built-in defaults (127.0.0.1:7233, namespace default, no TLS);
 * 2. the Temporal client profile that the `temporal` CLI also reads (TEMPORAL_CONFIG_FILE, else
 *    ~/.config/temporalio/temporal.toml; profile TEMPORAL_PROFILE, else "default");
 * 3. the standard TEMPORAL_* environment variables (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY,
 *    TEMPORAL_TLS*, ...), as the `temporal` CLI applies them over its profile;
 * 4. what the cluster-backup config file sets in its temporal section.
 * The config file is on top: it names the cluster this backup belongs to, and a TEMPORAL_ADDRESS left in an
 * operator's shell for the `temporal` CLI must not send the backup's runs to another cluster. Leave a field
 * out of the file to let the profile or the environment decide it. The file's tls section replaces the
 * profile's TLS as a whole (its files belong together); its apiKeyFile wins over TEMPORAL_API_KEY.
 */
export function temporalConnection(config: Config, env: NodeJS.ProcessEnv = process.env): TemporalConnectionSettings {
  return resolveConnection(config, env).settings;
}

/** Which layer of temporalConnection decided each setting. */
export function connectionSources(config: Config, env: NodeJS.ProcessEnv = process.env): ConnectionSources {
  return resolveConnection(config, env).sources;
}

function resolveConnection(config: Config, env: NodeJS.ProcessEnv) {
  const t = config.temporal;
  const envVars = Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
  const profile = loadClientConnectConfig({ overrideEnvVars: envVars });
  const fromProfile = profile.connectionOptions;
  const layer = (inFile: unknown, fromProfileOrEnv: unknown, envNames: string[]): SettingSource =>
    inFile !== undefined
      ? 'config file'
      : fromProfileOrEnv === undefined || fromProfileOrEnv === null
        ? 'default'
        : envNames.some((name) => Object.keys(envVars).some((key) => key.startsWith(name)))
          ? 'environment'
          : 'Temporal profile';
  const apiKeyFromProfile = typeof fromProfile.apiKey === 'string' ? fromProfile.apiKey : undefined;
  const apiKey = t.apiKeyFile ? readFileSync(t.apiKeyFile, 'utf8').trim() : apiKeyFromProfile;
  const tls = t.tls ? tlsFromFiles(t.tls) : (fromProfile.tls ?? undefined);
  const metadata = fromProfile.metadata as Record<string, string> | undefined;
  const settings: TemporalConnectionSettings = {
    address: t.address ?? fromProfile.address ?? DEFAULT_TEMPORAL_ADDRESS,
    namespace: t.namespace ?? profile.namespace ?? DEFAULT_TEMPORAL_NAMESPACE,
    ...(tls !== undefined ? { tls } : {}),
    ...(apiKey ? { apiKey } : {}),
    ...(metadata && Object.keys(metadata).length ? { metadata } : {}),
  };
  return {
    settings,
    sources: {
      address: layer(t.address, fromProfile.address, ['TEMPORAL_ADDRESS']),
      namespace: layer(t.namespace, profile.namespace, ['TEMPORAL_NAMESPACE']),
      tls: layer(t.tls, fromProfile.tls, ['TEMPORAL_TLS', 'TEMPORAL_API_KEY']),
      apiKey: layer(t.apiKeyFile, apiKeyFromProfile, ['TEMPORAL_API_KEY']),
    } satisfies ConnectionSources,
  };
}

function tlsFromFiles(tls: NonNullable<Config['temporal']['tls']>): TLSConfig {
  return {
    ...(tls.caFile ? { serverRootCACertificate: readFileSync(tls.caFile) } : {}),
    ...(tls.certFile && tls.keyFile
      ? { clientCertPair: { crt: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) } }
      : {}),
    ...(tls.serverName ? { serverNameOverride: tls.serverName } : {}),
  };
}

/** One line for logs and `config check`: where it connects and how, never a key. */
export function describeConnection(s: TemporalConnectionSettings, from: ConnectionSources): string {
  const security = [s.tls ? 'TLS' : 'plaintext', ...(s.apiKey ? ['API key'] : [])].join(' + ');
  return `${s.address} (from ${from.address}), namespace ${s.namespace} (from ${from.namespace}), ${security}`;
}

/** The task queue of the activities bound to the backup store's disk (see temporal.storeTaskQueue). */
export function storeTaskQueue(config: Config): string {
  return config.temporal.storeTaskQueue ?? `${config.temporal.taskQueue}-store`;
}
