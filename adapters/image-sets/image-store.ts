import { createHash } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, stat, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import type { StoredSet } from '../../domain/retention';
import { unsafeVmNameReason } from '../../domain/vm-names';
import { MANIFEST } from './image-area';
import { hashFile } from '../local/hash-file';

const STAMP = /^\d{8}T\d{6}Z$/;
/** What an image file in the store may be called: `<disk>.<format>`, nothing a path could hide in. */
export const IMAGE_FILE = /^[a-z0-9]{1,32}\.(qcow2|raw)$/i;

/** What a check of one stored set found, read from the disk alone (its manifest and its files). */
export interface SetCheck {
  vm: string;
  stamp: string;
  /** ok: every image the manifest lists is there, same size, same SHA-256. unverified: no manifest (never completed). */
  state: 'ok' | 'damaged' | 'unverified';
  problems: string[];
  images: number;
  bytes: number;
}

export interface StoreSet extends StoredSet {
  bytes: number;
}

/** The backup store on this machine: `<root>/<vm>/<stamp>/<disk>.<format>` and a manifest per set. */
export class ImageStore {
  constructor(readonly root: string) {}

  vmDir(vm: string): string {
    const reason = unsafeVmNameReason(vm);
    if (reason) throw new Error(`VM name ${JSON.stringify(vm)} ${reason}`);
    return join(this.root, vm);
  }

  setDir(vm: string, stamp: string): string {
    if (!STAMP.test(stamp)) throw new Error(`bad image stamp ${JSON.stringify(stamp)}`);
    return join(this.vmDir(vm), stamp);
  }

  async freeBytes(): Promise<number> {
    await mkdir(this.root, { recursive: true });
    const fs = await statfs(this.root);
    return fs.bavail * fs.bsize;
  }

  async listSets(vm: string): Promise<StoreSet[]> {
    const dir = this.vmDir(vm);
    const names = await readdir(dir).catch(() => [] as string[]);
    const sets: StoreSet[] = [];
    for (const stamp of names.filter((n) => STAMP.test(n))) {
      const files = await readdir(join(dir, stamp));
      let bytes = 0;
      for (const f of files) bytes += (await stat(join(dir, stamp, f))).size;
      sets.push({ stamp, verified: files.includes(MANIFEST), bytes });
    }
    return sets.sort((a, b) => a.stamp.localeCompare(b.stamp));
  }

  /** The VMs that have a folder in the store; anything else found there is left alone. */
  async listVms(): Promise<string[]> {
    const entries = await readdir(this.root, { withFileTypes: true }).catch(() => []);
    return entries
      .filter((e) => e.isDirectory() && !unsafeVmNameReason(e.name))
      .map((e) => e.name)
      .sort();
  }

  /** Re-reads a set's images and compares them with its manifest: what a restore would rely on. */
  async checkSet(vm: string, stamp: string): Promise<SetCheck> {
    const dir = this.setDir(vm, stamp);
    const check: SetCheck = { vm, stamp, state: 'ok', problems: [], images: 0, bytes: 0 };
    let manifest: { images?: { file?: unknown; bytes?: unknown; sha256?: unknown }[] };
    try {
      manifest = JSON.parse(await readFile(join(dir, MANIFEST), 'utf8')) as typeof manifest;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { ...check, state: 'unverified' };
      return { ...check, state: 'damaged', problems: [`${MANIFEST} unreadable: ${(err as Error).message}`] };
    }
    const images = Array.isArray(manifest.images) ? manifest.images : [];
    if (images.length === 0) check.problems.push(`${MANIFEST} lists no images`);
    for (const image of images) {
      const file = String(image.file);
      if (!IMAGE_FILE.test(file)) {
        check.problems.push(`${MANIFEST} names ${JSON.stringify(file)}, not an image file name`);
        continue;
      }
      const path = join(dir, file);
      const size = await stat(path).then(
        (st) => st.size,
        () => undefined,
      );
      if (size === undefined) check.problems.push(`${file} is missing`);
      else if (size !== image.bytes) check.problems.push(`${file} has ${size} bytes, the manifest says ${image.bytes}`);
      else {
        const sha256 = (await hashFile(createHash('sha256'), path)).digest('hex');
        if (sha256 !== image.sha256)
          check.problems.push(`${file}: SHA-256 ${sha256}, the manifest says ${image.sha256}`);
        check.images += 1;
        check.bytes += size;
      }
    }
    if (check.problems.length > 0) check.state = 'damaged';
    return check;
  }

  async removeSet(vm: string, stamp: string): Promise<void> {
    await rm(this.setDir(vm, stamp), { recursive: true, force: true });
  }

  /** Written last, flushed, renamed: a set with a manifest is complete and verified. */
  async writeManifest(vm: string, stamp: string, manifest: unknown): Promise<string> {
    const path = join(this.setDir(vm, stamp), MANIFEST);
    const partial = `${path}.partial`;
    const file = await open(partial, 'w');
    try {
      await file.writeFile(`${JSON.stringify(manifest, null, 2)}\n`);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(partial, path);
    return path;
  }
}
