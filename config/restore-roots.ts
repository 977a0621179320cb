import { posix } from 'node:path';
import type { Config } from './schema';
import { templateRoot } from '../domain/path-template';

/**
 * The folders a restore may write to on a host (`restore day`, `restore file --host`): hosts.<key>.restoreRoots,
 * or by default the fixed part of supim.sourceTemplate on the supim host and nothing anywhere else.
 */
export function restoreRoots(config: Config, hostKey: string): string[] {
  const configured = config.hosts[hostKey]?.restoreRoots;
  if (configured) return configured.map((r) => posix.normalize(r).replace(/(.)\/+$/, '$1'));
  return config.supim && hostKey === config.supim.host ? [templateRoot(config.supim.sourceTemplate)] : [];
}

/** The restore root a normalized absolute path lies in (at or below), or why it lies in none. */
export function restoreRootOf(to: string, roots: string[]): { ok: true; root: string } | { ok: false; why: string } {
  if (roots.length === 0) return { ok: false, why: 'the host has no restore roots' };
  const root = roots.find((r) => to === r || to.startsWith(r === '/' ? '/' : `${r}/`));
  return root !== undefined
    ? { ok: true, root }
    : { ok: false, why: `the path is outside its restore roots ${roots.join(', ')}` };
}

/** A remote `--to`: absolute, no NUL or line break, normalized without a trailing slash; undefined if refused. */
export function remoteTarget(asked: string): string | undefined {
  if (!asked.startsWith('/') || /[\0\n\r]/.test(asked)) return undefined;
  return posix.normalize(asked).replace(/(.)\/+$/, '$1');
}
