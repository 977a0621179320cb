import { join } from 'node:path';
import type { Config } from '../../config/schema';
import { offsiteFreshness, offsiteLag, type OffsiteFreshness } from '../../domain/offsite';
import { offsiteEnvOf } from './offsite';
import { Restic } from './restic';
import { resticEnvOf } from './restic-config';
import type { Snapshot } from './restic-json';
import { readVerifyState } from './verify-state';

/** Where the rotating check of off-site repository `name` keeps its state: beside the primary, in the store. */
export function offsiteStateFolder(storeRoot: string, name: string): string {
  return join(storeRoot, '.offsite', name);
}

/**
 * Every off-site repository's newest snapshot, its age against maxAgeHours (the watchdog, `status`, the
 * metrics). One that cannot be read is stale, with restic's message (it prints a REST password as ***); one
 * that does not answer within its answerSeconds is stale too (read without a lock, so the stopped reader
 * leaves none there).
 */
export async function readOffsiteFreshness(config: Config, now: Date): Promise<OffsiteFreshness[]> {
  const out: OffsiteFreshness[] = [];
  // The primary's snapshots once, for every repository's lag (none when it cannot be read: no lag shown).
  const primaryEnv = resticEnvOf(config.store);
  let primary: Snapshot[] | undefined;
  if (primaryEnv && Object.keys(config.offsite).length)
    primary = await new Restic(primaryEnv).snapshots().catch(() => undefined);
  for (const name of Object.keys(config.offsite).sort()) {
    const maxAgeHours = config.offsite[name]!.maxAgeHours;
    const answerSeconds = config.offsite[name]!.answerSeconds;
    const signal = AbortSignal.timeout(answerSeconds * 1000);
    try {
      const snapshots = await new Restic(offsiteEnvOf(config, name)).snapshots({ noLock: true, signal });
      const freshness = offsiteFreshness(
        name,
        snapshots.map((s) => s.time),
        maxAgeHours,
        now,
      );
      // The last check there (the copy activity's, after each copy), from its state beside the primary.
      const state = config.store
        ? await readVerifyState(offsiteStateFolder(config.store.root, name), config.offsite[name]!.verifySubsets).catch(
            () => undefined,
          )
        : undefined;
      out.push({
        ...freshness,
        ...(primary ? { lag: offsiteLag(primary, snapshots, now) } : {}),
        ...(state?.lastCheck ? { lastCheck: state.lastCheck } : {}),
      });
    } catch (err) {
      const reason = signal.aborted
        ? `the server gave no answer within ${answerSeconds} s (offsite.${name}.answerSeconds)`
        : (err as Error).message.slice(0, 300);
      out.push({ repository: name, maxAgeHours, stale: true, reason });
    }
  }
  return out;
}
