import { readFileSync } from 'node:fs';
import { platform } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { normalizeTlsConfig, type TLSConfig } from '@temporalio/common/lib/internal-non-workflow';
import {
  loadClientConfig,
  loadClientConfigProfile,
  toClientOptions,
  type ClientConfigProfile,
  type ClientConnectConfig,
} from '@temporalio/envconfig';
import { readFileAndModeSync, readSecretFileSync, refuseExposed } from '../local/secret-file';
import { LOOPBACK, type Config } from '../../config/schema';

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
 * Whatever layer decided them: key files that others may read are refused (as the SSH key's is), so is a
 * Temporal profile file others may read that holds an api_key or client_key_data, and so is plaintext to an
 * address that is not loopback unless temporal.allowPlaintext says so.
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
  const profile = loadProfile(envVars, t.tls !== undefined);
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
  const apiKey = t.apiKeyFile
    ? readSecretFileSync(t.apiKeyFile, 'Temporal API key file (temporal.apiKeyFile)').toString('utf8').trim()
    : apiKeyFromProfile;
  const tls = t.tls ? tlsFromFiles(t.tls) : (fromProfile.tls ?? undefined);
  const metadata = fromProfile.metadata as Record<string, string> | undefined;
  const settings: TemporalConnectionSettings = {
    address: t.address ?? fromProfile.address ?? DEFAULT_TEMPORAL_ADDRESS,
    namespace: t.namespace ?? profile.namespace ?? DEFAULT_TEMPORAL_NAMESPACE,
    ...(tls !== undefined ? { tls } : {}),
    ...(apiKey ? { apiKey } : {}),
    ...(metadata && Object.keys(metadata).length ? { metadata } : {}),
  };
  const address = layer(t.address, fromProfile.address, ['TEMPORAL_ADDRESS']);
  if (!usesTls(settings) && !t.allowPlaintext && !LOOPBACK.test(addressHost(settings.address))) {
    throw new TemporalConnectionError(
      `plaintext (no TLS) to the Temporal address ${settings.address} (from ${address}) is refused: it is not a ` +
        'loopback address, and workflow inputs, results and API keys would cross the network unencrypted. ' +
        'Set temporal.tls (or an API key), or temporal.allowPlaintext: true for a network you trust',
    );
  }
  return {
    settings,
    sources: {
      address,
      namespace: layer(t.namespace, profile.namespace, ['TEMPORAL_NAMESPACE']),
      tls: layer(t.tls, fromProfile.tls, ['TEMPORAL_TLS', 'TEMPORAL_API_KEY']),
      apiKey: layer(t.apiKeyFile, apiKeyFromProfile, ['TEMPORAL_API_KEY']),
    } satisfies ConnectionSources,
  };
}

/**
 * The Temporal profile with the environment over it, as @temporalio/envconfig's loadClientConnectConfig
 * makes it, but with the secret-file checks it lacks: the profile file is read here (the same bytes are
 * parsed) and refused when others may read it and it holds an api_key or client_key_data; the mTLS key
 * file is read with the others-can-read refusal, whether the profile or TEMPORAL_TLS_CLIENT_KEY_PATH named
 * it. With `tlsInConfigFile` the profile's TLS files are not read at all: the config file's replace them.
 */
function loadProfile(envVars: Record<string, string>, tlsInConfigFile: boolean): ClientConnectConfig {
  const file = profileFilePath(envVars);
  let data: Buffer | undefined;
  try {
    if (file !== undefined) {
      const read = readFileAndModeSync(file);
      data = read.data;
      const holdsSecret = Object.values(loadClientConfig({ configSource: { data } }).profiles).some(
        (p) => p.apiKey !== undefined || (p.tls?.clientKey !== undefined && 'data' in p.tls.clientKey),
      );
      if (holdsSecret) refuseExposed(read.mode, file, 'Temporal profile file (holding api_key or client_key_data)');
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (data === undefined && envVars.TEMPORAL_PROFILE) {
    throw new TemporalConnectionError(
      `Profile '${envVars.TEMPORAL_PROFILE}' not found: TEMPORAL_PROFILE names it, but there is no Temporal ` +
        `profile file${file ? ` at ${file}` : ''} (TEMPORAL_CONFIG_FILE)`,
    );
  }
  const profile: ClientConfigProfile = loadClientConfigProfile({
    ...(data !== undefined ? { configSource: { data } } : { disableFile: true }),
    overrideEnvVars: envVars,
  });
  const key = profile.tls?.clientKey;
  if (tlsInConfigFile) delete profile.tls;
  else if (profile.tls && key && 'path' in key) {
    const namedBy = envVars.TEMPORAL_TLS_CLIENT_KEY_PATH
      ? 'TEMPORAL_TLS_CLIENT_KEY_PATH'
      : `client_key_path of the Temporal profile in ${file}`;
    profile.tls.clientKey = { data: readSecretFileSync(key.path, `Temporal mTLS key file (${namedBy})`) };
  }
  return toClientOptions(profile);
}

/** Where @temporalio/envconfig looks for the profile file: TEMPORAL_CONFIG_FILE, else the user's config folder. */
function profileFilePath(env: Record<string, string>): string | undefined {
  if (env.TEMPORAL_CONFIG_FILE) return env.TEMPORAL_CONFIG_FILE;
  const home = env.HOME;
  const dir =
    platform() === 'darwin'
      ? home && join(home, 'Library', 'Application Support')
      : env.XDG_CONFIG_HOME
        ? isAbsolute(env.XDG_CONFIG_HOME)
          ? env.XDG_CONFIG_HOME
          : undefined
        : home && join(home, '.config');
  return dir ? join(dir, 'temporalio', 'temporal.toml') : undefined;
}

export class TemporalConnectionError extends Error {
  override name = 'TemporalConnectionError';
}

/** As the Temporal SDK decides it: TLS when set (or an API key is given and TLS is not turned off). */
function usesTls(s: TemporalConnectionSettings): boolean {
  return normalizeTlsConfig(s.tls, s.apiKey) !== undefined;
}

/** The host part of `host:port` or `[v6]:port`. */
function addressHost(address: string): string {
  const bracketed = /^\[([^\]]*)\](:\d*)?$/.exec(address);
  if (bracketed) return bracketed[1]!;
  return address.split(':').length === 2 ? address.slice(0, address.lastIndexOf(':')) : address;
}

function tlsFromFiles(tls: NonNullable<Config['temporal']['tls']>): TLSConfig {
  return {
    ...(tls.caFile ? { serverRootCACertificate: readFileSync(tls.caFile) } : {}),
    ...(tls.certFile && tls.keyFile
      ? {
          clientCertPair: {
            crt: readFileSync(tls.certFile),
            key: readSecretFileSync(tls.keyFile, 'Temporal mTLS key file (temporal.tls.keyFile)'),
          },
        }
      : {}),
    ...(tls.serverName ? { serverNameOverride: tls.serverName } : {}),
  };
}

/** One line for logs and `config check`: where it connects and how, never a key. */
export function describeConnection(s: TemporalConnectionSettings, from: ConnectionSources): string {
  const security = [usesTls(s) ? 'TLS' : 'plaintext', ...(s.apiKey ? ['API key'] : [])].join(' + ');
  return `${s.address} (from ${from.address}), namespace ${s.namespace} (from ${from.namespace}), ${security}`;
}

/** The task queue of the activities bound to the backup store's disk (see temporal.storeTaskQueue). */
export function storeTaskQueue(config: Config): string {
  return config.temporal.storeTaskQueue ?? `${config.temporal.taskQueue}-store`;
}

/**
 * The task queues of one hypervisor's activities (remote and store), each served by activities bound to that
 * hypervisor: a workflow reaches a host by the queue it schedules on. Hypervisor names have no '@'.
 */
export function hypervisorTaskQueues(config: Config, name: string): { remote: string; store: string } {
  return { remote: `${config.temporal.taskQueue}@${name}`, store: `${storeTaskQueue(config)}@${name}` };
}
