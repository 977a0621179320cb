import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';

/** One pack file of a local restic repository (<repo>/data/xx/<id>). */
export interface PackFile {
  id: string;
  bytes: number;
  /** When it was written (its mtime): a pack newer than a subset's check was not read by it. */
  writtenMs: number;
}

/** The pack files of a local repository, from the file system (restic's own names, sizes and times). */
export async function listPackFiles(repository: string): Promise<PackFile[]> {
  const data = join(repository, 'data');
  const packs: PackFile[] = [];
  for (const dir of await readdir(data)) {
    if (!/^[0-9a-f]{2}$/.test(dir)) continue;
    for (const name of await readdir(join(data, dir))) {
      if (!/^[0-9a-f]{64}$/.test(name)) continue;
      const s = await stat(join(data, dir, name));
      packs.push({ id: name, bytes: s.size, writtenMs: s.mtimeMs });
    }
  }
  return packs;
}

/**
 * The subset (1..N) of `restic check --read-data-subset=n/N` that reads a pack: restic 0.14 takes the
 * pack id's first byte modulo N (selectPacksByBucket), which is why N is at most 256.
 */
export function subsetOfPack(packId: string, subsets: number): number {
  return (parseInt(packId.slice(0, 2), 16) % subsets) + 1;
}

export interface Coverage {
  /** Bytes of the repository's packs now. */
  totalBytes: number;
  /** Of those, the bytes a check this period read (their subset was checked after they were written). */
  readBytes: number;
  fraction: number;
}

/** How much of the repository's data the subsets read this period cover (a `--full` after its start counts all). */
export function coverage(packs: readonly PackFile[], subsets: number, read: readonly { subset: number; at: string }[]) {
  const readAt = new Map(read.map((r) => [r.subset, Date.parse(r.at)]));
  let totalBytes = 0;
  let readBytes = 0;
  for (const pack of packs) {
    totalBytes += pack.bytes;
    const at = readAt.get(subsetOfPack(pack.id, subsets));
    if (at !== undefined && pack.writtenMs <= at) readBytes += pack.bytes;
  }
  return { totalBytes, readBytes, fraction: totalBytes ? readBytes / totalBytes : 1 } satisfies Coverage;
}
