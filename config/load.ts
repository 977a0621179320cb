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

/** Keys whose values are file paths; relative ones are taken relative to the config file. */
const PATH_KEYS = new Set([
  'privateKeyFile',
  'knownHostsFile',
  'destinationRoot',
  'imageArea',
  'root',
  'outbox',
  'passwordFile',
  'caFile',
  'certFile',
  'keyFile',
  'apiKeyFile',
]);

function resolveRelativePaths(value: unknown, baseDir: string): unknown {
  if (Array.isArray(value)) return value.map((v) => resolveRelativePaths(v, baseDir));
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, v]) => [
      key,
      PATH_KEYS.has(key) && typeof v === 'string' && v !== '' && !isAbsolute(v)
        ? resolve(baseDir, v)
        : resolveRelativePaths(v, baseDir),
    ]),
  );
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
