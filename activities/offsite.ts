import { mkdir } from 'node:fs/promises';
import type { Config } from '../config/schema';
import {
  type OffsiteFreshness,
  type OffsiteOutcome,
  type OffsiteRequest,
  type OffsiteSettings,
} from '../domain/offsite';
import { storeTaskQueue } from '../adapters/temporal/temporal-connection';
import { applyFileMode, storeFileMode } from '../adapters/local/file-mode';
import { copySnapshots, offsiteEnvOf, watchReachable, type CopyProgress } from '../adapters/restic/offsite';
import { Restic } from '../adapters/restic/restic';
import { readOffsiteFreshness } from '../adapters/restic/offsite-freshness';
import { checkRepository } from '../adapters/restic/repository-verify';
import { offsiteStateFolder } from '../adapters/restic/offsite-freshness';
import { afterSubset, readVerifyState, writeVerifyState } from '../adapters/restic/verify-state';
import { requireSection } from './config-section';
import { whileHeartbeating } from './heartbeat';
import { resticOptions } from './services';

export interface OffsiteDeps {
  config: Config;
  now?: () => Date;
}

/**
 * The upload cap of copies to off-site repository `name` (bytes/s; 0: none): its own maxBytesPerSecond when
 * set (0 there lifts the cap for this repository alone), else transfer.maxBytesPerSecond.
 */
export function offsiteUploadLimit(config: Config, name: string): number {
  return config.offsite[name]?.maxBytesPerSecond ?? config.transfer.maxBytesPerSecond;
}

interface OffsiteHeartbeat extends Partial<CopyProgress> {
  repository: string;
  phase: 'measuring' | 'copying' | 'checking';
  what: string;
}

/**
 * Off-site copies (store task queue: reads the primary repository on this host's disk). Each repository
 * is its own activity call, so one that is down delays none of the others.
 */
export function createOffsiteActivities({ config, now = () => new Date() }: OffsiteDeps) {
  /**
   * What a run needs to copy off-site (main task queue: reads config only): the configured repositories'
   * names (none: nothing to copy) and where the copies run. Names only, never a location's credentials.
   */
  async function getOffsiteSettings(): Promise<OffsiteSettings> {
    return {
      repositories: Object.keys(config.offsite).sort(),
      storeTaskQueue: storeTaskQueue(config),
      heartbeatTimeoutSeconds: config.transfer.heartbeatTimeoutSeconds,
    };
  }

  /**
   * `restic copy` of the request's snapshots from the primary to off-site repository `name`, at most
   * maxBytesPerSecond (or transfer.maxBytesPerSecond), then `restic check` there: the structure and the next
   * rotating subset of the data. Resumable: a snapshot already there is skipped, a pack already there is
   * not sent again. A server that accepts no connection for unreachableSeconds stops the copy (transient:
   * the workflow's bounded retry, then "behind"); damage found off-site is the outcome `damaged`.
   */
  async function copyToOffsite(name: string, request: OffsiteRequest): Promise<OffsiteOutcome> {
    const dest = offsiteEnvOf(config, name);
    const entry = config.offsite[name]!;
    const from = resticOptions(config);
    const storeRoot = requireSection(config.store, 'store').root;
    const startedAt = now().getTime();
    const offsite = new Restic(dest);
    const beat: OffsiteHeartbeat = { repository: name, phase: 'measuring', what: request.what };
    return whileHeartbeating(
      () => beat,
      async (signal) => {
        // A copy killed earlier (worker gone, server down while it ran) leaves its lock there: restic removes
        // stale locks only (a live process's lock stays); append-only servers let locks be deleted.
        await offsite.unlockStale();
        const before = await offsite.stats('raw-data');
        beat.phase = 'copying';
        const stop = new AbortController();
        const unwatch = watchReachable(dest.repository, entry.unreachableSeconds, stop);
        let copied;
        try {
          copied = await copySnapshots(dest, from, {
            tagGroups: request.tagGroups,
            maxBytesPerSecond: offsiteUploadLimit(config, name),
            onProgress: (p) => Object.assign(beat, p),
            signal: AbortSignal.any([signal, stop.signal]),
          });
        } finally {
          unwatch();
        }
        const after = await offsite.stats('raw-data');
        beat.phase = 'checking';
        const folder = offsiteStateFolder(storeRoot, name);
        const mode = storeFileMode(config.permissions);
        await mkdir(folder, { recursive: true, mode: mode.folderMode });
        await applyFileMode(folder, mode, 'folder');
        const state = await readVerifyState(folder, entry.verifySubsets);
        const subset = state.next;
        const at = now();
        const check = await checkRepository(offsite, { subset, of: entry.verifySubsets });
        const packs = check.damaged.map((d) => d.pack);
        await writeVerifyState(folder, afterSubset(state, subset, at, check.ok, packs), mode);
        const broken = [
          ...new Set(
            check.damaged.flatMap((d) => [
              ...d.sets.map((s) => `${s.vm}/${s.stamp}/${s.disk}`),
              ...(d.days ?? []).map((day) => `day ${day}`),
            ]),
          ),
        ];
        return {
          repository: name,
          status: check.ok ? 'copied' : 'damaged',
          saved: copied.saved,
          skipped: copied.skipped,
          bytesAdded: Math.max(0, after.total_size - before.total_size),
          snapshots: after.snapshots_count ?? 0,
          check: {
            what: `structure + subset ${subset}/${entry.verifySubsets}`,
            ok: check.ok,
            damagedPacks: packs,
            broken,
          },
          ...(check.ok ? {} : { reason: `restic check there: ${check.outputTail.split('\n').slice(-3).join(' ')}` }),
          seconds: Math.round((now().getTime() - startedAt) / 1000),
        };
      },
    );
  }

  /** The watchdog's look at every off-site repository (store task queue: the password files are here). */
  async function checkOffsiteFreshness(): Promise<OffsiteFreshness[]> {
    return readOffsiteFreshness(config, now());
  }

  return { getOffsiteSettings, copyToOffsite, checkOffsiteFreshness };
}
