import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { GuestImage } from '../guestfs/guestfish';
import type { LocalImageSets } from './local-image-sets';
import { ManifestError, MANIFEST, type ManifestImage } from './manifest';
import type { ResticImageSets } from './restic-image-sets';
import { resticSetForRestore, ResticSetProblem } from './restic-restore-source';
import { hashingTap } from '../local/hashing-tap';

/** A set that cannot be read for a file restore: `missing` (no such verified set or disk) or `damaged`. */
export class StoredSetProblem extends Error {
  override name = 'StoredSetProblem';
  constructor(
    message: string,
    readonly kind: 'missing' | 'damaged',
  ) {
    super(message);
  }
}

/** The disk images of one stored set as local files libguestfs can open read-only; `release` removes temporaries. */
export interface SetImages {
  vm: string;
  stamp: string;
  disks: (GuestImage & { disk: string; sha256: string })[];
  release(): Promise<void>;
}

/** Folder (in the store root) that holds restic dumps while a file restore reads them: 0700, emptied after. */
export const DUMP_FOLDER = '.cluster-backup-file-restore';

function chooseDisks(images: ManifestImage[], where: string, disk?: string): ManifestImage[] {
  if (disk === undefined) return images;
  const found = images.filter((i) => i.disk === disk);
  if (found.length === 0)
    throw new StoredSetProblem(
      `${where} has no disk ${JSON.stringify(disk)} (have: ${images.map((i) => i.disk).join(', ')})`,
      'missing',
    );
  return found;
}

/**
 * store.engine files: the image files in the store, as they are (libguestfs opens them read-only). The set
 * is the given stamp or the newest verified one; each image must be there with the manifest's size.
 */
export async function filesSetImages(
  store: LocalImageSets,
  vm: string,
  stamp?: string,
  disk?: string,
): Promise<SetImages> {
  const { stamp: chosen, manifest, dir } = await verifiedFilesSet(store, vm, stamp);
  const disks = [];
  for (const image of chooseDisks(manifest.images, `${vm}/${chosen}`, disk)) {
    await checkImageFile(dir, `${vm}/${chosen}`, image);
    disks.push({ disk: image.disk, path: join(dir, image.file), format: image.format, sha256: image.sha256 });
  }
  return { vm, stamp: chosen, disks, release: async () => undefined };
}

/**
 * A verified set of the files engine (the given stamp, or the newest verified one) and its manifest; no
 * such set, or a manifest missing or unreadable, is a StoredSetProblem. Shared by file restore and restore vm.
 */
export async function verifiedFilesSet(store: LocalImageSets, vm: string, stamp?: string) {
  const verified = (await store.listSets(vm)).filter((s) => s.verified);
  const chosen = stamp ?? verified.at(-1)?.stamp;
  if (!chosen)
    throw new StoredSetProblem(`the store ${store.root} holds no verified set of ${JSON.stringify(vm)}`, 'missing');
  if (!verified.some((s) => s.stamp === chosen)) {
    const have = verified.map((s) => s.stamp).join(', ') || 'none';
    throw new StoredSetProblem(
      `no verified set ${chosen} of ${JSON.stringify(vm)} in the store (have: ${have})`,
      'missing',
    );
  }
  const manifest = await store.readManifest(vm, chosen).catch((err: unknown) => {
    if (err instanceof ManifestError)
      throw new StoredSetProblem(`${vm}/${chosen}/${MANIFEST} ${err.message}`, 'damaged');
    throw err;
  });
  if (!manifest) throw new StoredSetProblem(`${vm}/${chosen} has no manifest`, 'missing');
  return { stamp: chosen, manifest, dir: store.setDir(vm, chosen) };
}

/** An image file of a set must be there with the manifest's size (`where`: vm/stamp, for the message). */
export async function checkImageFile(dir: string, where: string, image: ManifestImage): Promise<void> {
  const size = await stat(join(dir, image.file)).then(
    (s) => s.size,
    () => -1,
  );
  if (size !== image.bytes)
    throw new StoredSetProblem(
      `${where}/${image.file}: ${size < 0 ? 'missing' : `${size} bytes`}, the manifest says ${image.bytes}`,
      'damaged',
    );
}

/**
 * store.engine restic: each disk snapshot `restic dump`ed into a private temporary file (0600, in a 0700
 * folder under `<store root>/.cluster-backup-file-restore/`), its SHA-256 computed while it is written and
 * compared with the set's record; `release` deletes them. A dump that differs is deleted at once.
 */
export async function resticSetImages(
  sets: ResticImageSets,
  storeRoot: string,
  vm: string,
  stamp?: string,
  disk?: string,
): Promise<SetImages> {
  const found = await resticSetForRestore(sets, vm, stamp).catch((err: unknown) => {
    if (err instanceof ResticSetProblem) throw new StoredSetProblem(err.message, err.kind);
    if (err instanceof ManifestError)
      throw new StoredSetProblem(`${vm}/${stamp ?? 'newest'}: ${err.message}`, 'damaged');
    throw err;
  });
  const chosen = chooseDisks(found.manifest.images, `${vm}/${found.stamp}`, disk);
  const parent = join(storeRoot, DUMP_FOLDER);
  await mkdir(parent, { recursive: true, mode: 0o700 });
  const dir = join(parent, `${vm}-${found.stamp}-${randomBytes(6).toString('hex')}`);
  await mkdir(dir, { mode: 0o700 });
  const release = () => rm(dir, { recursive: true, force: true });
  try {
    const disks = [];
    for (const image of chosen) {
      const path = join(dir, `${image.disk}.raw`);
      const tap = hashingTap();
      await pipeline(
        sets.diskStream(vm, image.restic!.snapshot, image.disk),
        tap.stream,
        createWriteStream(path, { mode: 0o600, flags: 'wx' }),
      );
      const [bytes, sha256] = [tap.bytes(), tap.sha256()];
      if (bytes !== image.bytes || sha256 !== image.sha256)
        throw new StoredSetProblem(
          `${vm}/${found.stamp}/${image.disk}: restic dump gave ${bytes} bytes with SHA-256 ${sha256.slice(0, 16)}…, the record says ${image.bytes} bytes, ${image.sha256.slice(0, 16)}…`,
          'damaged',
        );
      // restic stores raw bytes (the stream the weekly run fed it), whatever the disk's format on the hypervisor.
      disks.push({ disk: image.disk, path, format: 'raw' as const, sha256 });
    }
    return { vm, stamp: found.stamp, disks, release };
  } catch (err) {
    await release();
    throw err;
  }
}
