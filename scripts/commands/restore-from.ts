import type { Config } from '../../config/schema';
import { UsageError } from './command-kit';

export const FROM_OFFSITE_HELP =
  'offsite:NAME: read the set from that off-site repository (a key of the config`s offsite) instead of the store';

/** `--from offsite:<name>` as a request field: the repository's name only (never its location or password). */
export function offsiteOf(from: string | undefined): { offsite?: string } {
  if (from === undefined) return {};
  const m = /^offsite:([a-z0-9][a-z0-9_-]*)$/i.exec(from);
  if (!m) throw new UsageError(`--from is offsite:<name> (a key of the config's offsite), not ${JSON.stringify(from)}`);
  return { offsite: m[1]! };
}

/** An off-site name the config does not have is refused before anything starts. */
export function checkOffsiteOf(request: { offsite?: string }, config: Config): void {
  if (request.offsite === undefined) return;
  const names = Object.keys(config.offsite);
  if (!names.includes(request.offsite))
    throw new UsageError(
      `no off-site repository ${JSON.stringify(request.offsite)} in config (have: ${names.join(', ') || 'none'})`,
    );
}
