import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { configSchema, type Config } from './schema';

export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(`invalid config ${file}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/**
 * The fields that are paths on this machine (`*`: any key): a relative one is taken relative to the config
 * file. Paths on remote hosts (imageArea, sourceTemplate) must be absolute and are left as written.
 */
const LOCAL_PATH_FIELDS = [
  'hosts.*.privateKeyFile',
  'hosts.*.knownHostsFile',
  'supim.destinationRoot',
  'store.root',
  'mail.outbox',
  'mail.smtp.passwordFile',
  'mail.smtp.caFile',
  'temporal.tls.caFile',
  'temporal.tls.certFile',
  'temporal.tls.keyFile',
  'temporal.apiKeyFile',
  'offsite.*.passwordFile',
  'offsite.*.httpPasswordFile',
].map((field) => field.split('.'));

function resolveAt(value: unknown, path: string[], baseDir: string): unknown {
  const [key, ...rest] = path;
  if (value === null || typeof value !== 'object' || Array.isArray(value) || key === undefined) return value;
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => {
      if (key !== '*' && k !== key) return [k, v];
      if (rest.length > 0) return [k, resolveAt(v, rest, baseDir)];
      return [k, typeof v === 'string' && v !== '' && !isAbsolute(v) ? resolve(baseDir, v) : v];
    }),
  );
}

function resolveRelativePaths(raw: unknown, baseDir: string): unknown {
  return LOCAL_PATH_FIELDS.reduce((value, path) => resolveAt(value, path, baseDir), raw);
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const path = issue.path.length ? issue.path.map(String).join('.') : '(top level)';
  return `${path}: ${issue.message}`;
}

/** Reports go somewhere even when nobody configured mail: an outbox folder beside the config file. */
function withDefaultMail(raw: unknown): unknown {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw) || 'mail' in raw) return raw;
  return { ...raw, mail: { outbox: 'outbox' } };
}

export function parseConfig(raw: unknown, source: string, baseDir: string): Config {
  const result = configSchema.safeParse(resolveRelativePaths(withDefaultMail(raw), baseDir));
  if (!result.success) throw new ConfigError(source, result.error.issues.map(describeIssue));
  return result.data;
}

export function loadConfig(file: string): Config {
  const path = resolve(file);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(path, [`cannot read: ${(err as Error).message}`]);
  }
  let raw: unknown;
  try {
    raw = path.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new ConfigError(path, [`not valid ${path.endsWith('.json') ? 'JSON' : 'YAML'}: ${(err as Error).message}`]);
  }
  return parseConfig(raw, path, dirname(path));
}
