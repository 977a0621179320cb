import type { Config } from '../../config/schema';
import { offsiteFreshness, type OffsiteFreshness } from '../../domain/offsite';
import { offsiteEnvOf } from './offsite';
import { Restic } from './restic';

/**
 * Every off-site repository's newest snapshot, its age against maxAgeHours (the watchdog, `status`, the
 * metrics). One that cannot be read is stale, with restic's message (it prints a REST password as ***).
 */
export async function readOffsiteFreshness(config: Config, now: Date): Promise<OffsiteFreshness[]> {
  const out: OffsiteFreshness[] = [];
  for (const name of Object.keys(config.offsite).sort()) {
    const maxAgeHours = config.offsite[name]!.maxAgeHours;
    try {
      const snapshots = await new Restic(offsiteEnvOf(config, name)).snapshots();
      out.push(
        offsiteFreshness(
          name,
          snapshots.map((s) => s.time),
          maxAgeHours,
          now,
        ),
      );
    } catch (err) {
      out.push({ repository: name, maxAgeHours, stale: true, reason: (err as Error).message.slice(0, 300) });
    }
  }
  return out;
}
