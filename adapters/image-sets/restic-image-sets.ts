import { createHash } from 'node:crypto';
import { statfs } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { getISOWeek, getISOWeekYear } from 'date-fns';
import type { BackupResult, Restic } from '../restic/restic';
import type { Snapshot } from '../restic/restic-json';
import { DISK_TARGET, setPathParts, UnsafeImageSetPath, type ImageSets, type ImageSetSummary } from './image-sets';
import type { SetCheck } from './local-image-sets';
import { MANIFEST, parseManifest, renderManifest, type SetManifest } from './manifest';

/**
 * Image sets in a restic repository (store.engine: restic). Each disk of a set is one snapshot of one file,
 * `/<vm>/<disk>.raw` (raw bytes, so unchanged blocks deduplicate across weeks), and the set's record (the
 * same manifest as the files engine, with the domain XML) is one more snapshot, `/<vm>/manifest.json`,
 * written last: a set with a record is complete and verified. Snapshots carry tags, so a set is found
 * without reading anything: `vm=<vm>`, `set=<stamp>`, `week=<yyyy-Www>`, and `disk=<target>` plus
 * `bytes=<size>` for an image, `record` for the manifest.
 */
export class ResticImageSets implements ImageSets {
  constructor(readonly restic: Restic) {}

  get root(): string {
    return this.restic.repository;
  }

  get where(): string {
    return `the restic repository ${this.root}`;
  }

  async freeBytes(): Promise<number> {
    const fs = await statfs(this.root);
    return fs.bavail * fs.bsize;
  }

  /** Every snapshot of a VM's sets, grouped by stamp. */
  private async snapshotsOf(vm: string, stamp?: string): Promise<Map<string, Snapshot[]>> {
    const tags = [`vm=${vm}`, ...(stamp ? [`set=${stamp}`] : [])];
    const sets = new Map<string, Snapshot[]>();
    for (const snapshot of await this.restic.snapshots({ tags })) {
      const set = tagValue(snapshot, 'set');
      if (!set) continue;
      sets.set(set, [...(sets.get(set) ?? []), snapshot]);
    }
    return sets;
  }

  async listSets(vm: string): Promise<ImageSetSummary[]> {
    setPathParts(vm, '00000000T000000Z');
    const sets: ImageSetSummary[] = [];
    for (const [stamp, snapshots] of await this.snapshotsOf(vm)) {
      const bytes = snapshots.reduce((sum, s) => sum + Number(tagValue(s, 'bytes') ?? 0), 0);
      // Deduplicated: what a set takes alone is unknown; admission counts its full size (the worst case).
      sets.push({ stamp, verified: snapshots.some(isRecord), bytes, allocatedBytes: bytes });
    }
    return sets.sort((a, b) => a.stamp.localeCompare(b.stamp));
  }

  /** Forgets every snapshot of the set; the space returns with the next `prune`. */
  async removeSet(vm: string, stamp: string): Promise<void> {
    setPathParts(vm, stamp);
    const snapshots = (await this.snapshotsOf(vm, stamp)).get(stamp) ?? [];
    await this.restic.forgetSnapshots(snapshots.map((s) => s.id));
  }

  /** An unrecorded set's disk snapshots (a run that stopped before its record) are forgotten. */
  async removePartials(vm: string, stamp: string): Promise<void> {
    setPathParts(vm, stamp);
    const snapshots = (await this.snapshotsOf(vm, stamp)).get(stamp) ?? [];
    if (snapshots.some(isRecord)) return;
    await this.restic.forgetSnapshots(snapshots.map((s) => s.id));
  }

  /** A disk snapshot of the set, if one was stored (by this attempt or an earlier one). */
  async diskSnapshots(vm: string, stamp: string, disk: string): Promise<Snapshot[]> {
    setPathParts(vm, stamp);
    return this.restic.snapshots({ tags: [`vm=${vm}`, `set=${stamp}`, `disk=${checkDisk(disk)}`] });
  }

  /** Stores one disk's raw bytes as a snapshot of `/<vm>/<disk>.raw`. */
  async storeDisk(request: {
    vm: string;
    stamp: string;
    disk: string;
    bytes: number;
    stdin: Readable;
    onProgress?: (bytesDone: number) => void;
    signal?: AbortSignal;
  }): Promise<BackupResult> {
    const { vm, stamp, disk } = request;
    setPathParts(vm, stamp);
    return this.restic.backupStdin({
      stdin: request.stdin,
      filename: `${vm}/${checkDisk(disk)}.raw`,
      tags: [...setTags(vm, stamp), `disk=${disk}`, `bytes=${request.bytes}`],
      ...(request.onProgress ? { onProgress: request.onProgress } : {}),
      ...(request.signal ? { signal: request.signal } : {}),
    });
  }

  /** One stored disk's raw bytes, from the snapshot the set's record names. */
  diskStream(vm: string, snapshot: string, disk: string): Readable {
    setPathParts(vm, '00000000T000000Z');
    return this.restic.dump(snapshot, `/${vm}/${checkDisk(disk)}.raw`);
  }

  /**
   * Re-reads a recorded set from the repository: each disk dumped, its size and SHA-256 compared with the
   * record's (what `store verify --vm` says of one VM; the repository's own check is `restic check`).
   */
  async checkSet(vm: string, stamp: string): Promise<SetCheck> {
    const check: SetCheck = { vm, stamp, state: 'ok', problems: [], images: 0, bytes: 0, allocatedBytes: 0 };
    let manifest: SetManifest | undefined;
    try {
      manifest = await this.readManifest(vm, stamp);
    } catch (err) {
      return { ...check, state: 'damaged', problems: [`the record: ${(err as Error).message}`] };
    }
    if (!manifest) return { ...check, state: 'unverified' };
    for (const image of manifest.images) {
      if (!image.restic) {
        check.problems.push(`${image.disk}: the record names no snapshot`);
        continue;
      }
      const hash = createHash('sha256');
      let bytes = 0;
      try {
        for await (const chunk of this.diskStream(vm, image.restic.snapshot, image.disk)) {
          hash.update(chunk as Buffer);
          bytes += (chunk as Buffer).length;
        }
      } catch (err) {
        check.problems.push(
          `${image.disk}: snapshot ${image.restic.snapshot.slice(0, 8)} unreadable: ${(err as Error).message}`,
        );
        continue;
      }
      const sha256 = hash.digest('hex');
      if (bytes !== image.bytes) check.problems.push(`${image.disk}: ${bytes} bytes, the record says ${image.bytes}`);
      else if (sha256 !== image.sha256)
        check.problems.push(`${image.disk}: SHA-256 ${sha256}, the record says ${image.sha256}`);
      else {
        check.images += 1;
        check.bytes += bytes;
        check.allocatedBytes += bytes;
      }
    }
    if (check.problems.length > 0) check.state = 'damaged';
    return check;
  }

  async readManifest(vm: string, stamp: string): Promise<SetManifest | undefined> {
    setPathParts(vm, stamp);
    const record = ((await this.snapshotsOf(vm, stamp)).get(stamp) ?? []).filter(isRecord).at(-1);
    if (!record) return undefined;
    return parseManifest(await text(this.restic.dump(record.id, `/${vm}/${MANIFEST}`)), { vm, stamp });
  }

  async writeManifest(vm: string, stamp: string, manifest: SetManifest): Promise<string> {
    setPathParts(vm, stamp);
    const { snapshotId } = await this.restic.backupStdin({
      stdin: Readable.from([Buffer.from(renderManifest(manifest))]),
      filename: `${vm}/${MANIFEST}`,
      tags: [...setTags(vm, stamp), 'record'],
    });
    return `${this.where}, snapshot ${snapshotId.slice(0, 8)}`;
  }
}

function checkDisk(disk: string): string {
  if (!DISK_TARGET.test(disk)) throw new UnsafeImageSetPath(`bad disk target ${JSON.stringify(disk)}`);
  return disk;
}

const isRecord = (s: Snapshot) => s.tags.includes('record');

function tagValue(snapshot: Snapshot, key: string): string | undefined {
  return snapshot.tags.find((t) => t.startsWith(`${key}=`))?.slice(key.length + 1);
}

/** The tags every snapshot of a set carries: VM, stamp and its ISO week (what an operator filters by). */
export function setTags(vm: string, stamp: string): string[] {
  const m = /^(\d{4})(\d{2})(\d{2})T/.exec(stamp)!;
  const day = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), 12));
  const week = `${getISOWeekYear(day)}-W${String(getISOWeek(day)).padStart(2, '0')}`;
  return [`vm=${vm}`, `set=${stamp}`, `week=${week}`];
}
