import { PassThrough, type Readable } from 'node:stream';
import type { ManifestImage, SetManifest } from './manifest';
import type { ResticImageSets } from './restic-image-sets';

/** Why a restic set cannot be restored: `missing` (no such verified set) or `damaged` (record and snapshots disagree). */
export class ResticSetProblem extends Error {
  constructor(
    message: string,
    readonly kind: 'missing' | 'damaged',
  ) {
    super(message);
    this.name = 'ResticSetProblem';
  }
}

/**
 * The set a restore reads from a restic repository (store.engine restic): the given stamp, or the newest
 * recorded (verified) one. Its record must name, for every image, a disk snapshot that is still in the
 * repository with that set's tags and the record's size; else nothing is restored (ResticSetProblem).
 * In a repository the set was copied to (`restic copy`: off-site), the disk snapshot has an id of its own and
 * names the record's as its `original`: the manifest returned names that copy's id, which is what is dumped.
 */
export async function resticSetForRestore(
  sets: ResticImageSets,
  vm: string,
  stamp?: string,
): Promise<{ stamp: string; manifest: SetManifest }> {
  const verified = (await sets.listSets(vm)).filter((s) => s.verified);
  const chosen = stamp ?? verified.at(-1)?.stamp;
  if (!chosen) throw new ResticSetProblem(`${sets.where} holds no verified set of ${JSON.stringify(vm)}`, 'missing');
  if (!verified.some((s) => s.stamp === chosen)) {
    const have = verified.map((s) => s.stamp).join(', ') || 'none';
    throw new ResticSetProblem(
      `no verified set ${chosen} of ${JSON.stringify(vm)} in ${sets.where} (have: ${have})`,
      'missing',
    );
  }
  const manifest = await sets.readManifest(vm, chosen);
  if (!manifest) throw new ResticSetProblem(`${vm}/${chosen} has no record in ${sets.where}`, 'missing');
  const images = [];
  for (const image of manifest.images) {
    if (!image.restic)
      throw new ResticSetProblem(`${vm}/${chosen}/${image.disk}: the record names no restic snapshot`, 'damaged');
    const snapshot = image.restic.snapshot;
    const same = (id: string | undefined) => id !== undefined && (id.startsWith(snapshot) || snapshot.startsWith(id));
    const found = (await sets.diskSnapshots(vm, chosen, image.disk)).find((s) => same(s.id) || same(s.original));
    if (!found)
      throw new ResticSetProblem(
        `${vm}/${chosen}/${image.disk}: snapshot ${snapshot.slice(0, 8)} is not in ${sets.where}`,
        'damaged',
      );
    const bytes = Number(found.tags.find((t) => t.startsWith('bytes='))?.slice('bytes='.length));
    if (bytes !== image.bytes)
      throw new ResticSetProblem(
        `${vm}/${chosen}/${image.disk}: snapshot ${snapshot.slice(0, 8)} holds ${bytes} bytes, the record says ${image.bytes}`,
        'damaged',
      );
    images.push(same(found.id) ? image : { ...image, restic: { ...image.restic, snapshot: found.id } });
  }
  return { stamp: chosen, manifest: { ...manifest, images } };
}

/**
 * A restic image's bytes from `start` on: `restic dump` from the beginning, the first `start` bytes read and
 * dropped (restic dumps a file only whole), so a resumed push sends only the rest.
 */
export function resticImageFrom(sets: ResticImageSets, vm: string, image: ManifestImage, start: number): Readable {
  if (!image.restic) throw new ResticSetProblem(`${vm}/${image.disk}: the record names no restic snapshot`, 'damaged');
  const dump = sets.diskStream(vm, image.restic.snapshot, image.disk);
  if (start <= 0) return dump;
  let skip = start;
  const rest = new PassThrough();
  dump.on('error', (err) => rest.destroy(err));
  rest.on('close', () => dump.destroy());
  dump.on('data', (chunk: Buffer) => {
    if (skip >= chunk.length) {
      skip -= chunk.length;
      return;
    }
    const keep = skip > 0 ? chunk.subarray(skip) : chunk;
    skip = 0;
    if (!rest.write(keep)) {
      dump.pause();
      rest.once('drain', () => dump.resume());
    }
  });
  dump.on('end', () => rest.end());
  return rest;
}

/** The VMs with at least one snapshot in the repository (tag vm=<name>). */
export async function resticVms(sets: ResticImageSets): Promise<string[]> {
  const vms = new Set<string>();
  for (const snapshot of await sets.restic.snapshots())
    for (const tag of snapshot.tags) if (tag.startsWith('vm=')) vms.add(tag.slice(3));
  return [...vms].sort();
}
