import { createHash } from 'node:crypto';
import { open, readdir, readFile, rename, rm, stat, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { applyFileMode, OWNER_ONLY, type StoreFileMode } from '../local/file-mode';
import { hashFile } from '../local/hash-file';
import { type ImageSets, type ImageSetSummary, PARTIAL_SUFFIX, setPathParts, STAMP, vmFolder } from './image-sets';
import { IMAGE_FILE, MANIFEST, ManifestError, parseManifest, renderManifest, type SetManifest } from './manifest';
import { unsafeVmNameReason } from '../../domain/vm-names';

/** What a check of one stored set found, read from the disk alone (its manifest and its files). */
export interface SetCheck {
  vm: string;
  stamp: string;
  /** ok: every image the manifest lists is there, same size, same SHA-256. unverified: no manifest (never completed). */
  state: 'ok' | 'damaged' | 'unverified';
  problems: string[];
  images: number;
  /** Apparent bytes of the images checked. */
  bytes: number;
  /** What they occupy on disk. */
  allocatedBytes: number;
}

/** Image sets on this machine's disk: the backup store. */
export class LocalImageSets implements ImageSets {
  constructor(
    readonly root: string,
    /** Mode and group of the manifests written (the image files get theirs from the file sink). */
    private readonly mode: StoreFileMode = OWNER_ONLY,
  ) {}

  get where(): string {
    return `the store ${this.root}`;
  }

  setDir(vm: string, stamp: string): string {
    return join(this.root, ...setPathParts(vm, stamp));
  }

  async freeBytes(): Promise<number> {
    const fs = await statfs(this.root);
    return fs.bavail * fs.bsize;
  }

  async listSets(vm: string): Promise<ImageSetSummary[]> {
    const dir = join(this.root, vmFolder(vm));
    const names = await readdir(dir).catch(() => [] as string[]);
    const sets: ImageSetSummary[] = [];
    for (const stamp of names.filter((n) => STAMP.test(n))) {
      const files = await readdir(join(dir, stamp));
      const set: ImageSetSummary = { stamp, verified: files.includes(MANIFEST), bytes: 0, allocatedBytes: 0 };
      for (const f of files) {
        const st = await stat(join(dir, stamp, f));
        set.bytes += st.size;
        set.allocatedBytes += st.blocks * 512;
      }
      sets.push(set);
    }
    return sets.sort((a, b) => a.stamp.localeCompare(b.stamp));
  }

  /** The VMs that have a folder in the store; anything else found there is left alone. */
  async listVms(): Promise<string[]> {
    const entries = await readdir(this.root, { withFileTypes: true }).catch(() => []);
    return entries
      .filter((e) => e.isDirectory() && !e.name.startsWith('.') && !unsafeVmNameReason(e.name))
      .map((e) => e.name)
      .sort();
  }

  async readManifest(vm: string, stamp: string): Promise<SetManifest | undefined> {
    const text = await readFile(join(this.setDir(vm, stamp), MANIFEST), 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    return text === undefined ? undefined : parseManifest(text, { vm, stamp });
  }

  /** Re-reads a set's images and compares them with its manifest: what a restore would rely on. */
  async checkSet(vm: string, stamp: string): Promise<SetCheck> {
    const dir = this.setDir(vm, stamp);
    const check: SetCheck = { vm, stamp, state: 'ok', problems: [], images: 0, bytes: 0, allocatedBytes: 0 };
    let manifest: SetManifest | undefined;
    try {
      manifest = await this.readManifest(vm, stamp);
    } catch (err) {
      const why = err instanceof ManifestError ? err.message : `unreadable: ${(err as Error).message}`;
      return { ...check, state: 'damaged', problems: [`${MANIFEST} ${why}`] };
    }
    if (!manifest) return { ...check, state: 'unverified' };
    for (const image of manifest.images) {
      const path = join(dir, image.file);
      const st = await stat(path).catch(() => undefined);
      if (!st) check.problems.push(`${image.file} is missing`);
      else if (st.size !== image.bytes)
        check.problems.push(`${image.file} has ${st.size} bytes, the manifest says ${image.bytes}`);
      else {
        const sha256 = (await hashFile(createHash('sha256'), path)).digest('hex');
        if (sha256 !== image.sha256)
          check.problems.push(`${image.file}: SHA-256 ${sha256}, the manifest says ${image.sha256}`);
        check.images += 1;
        check.bytes += st.size;
        check.allocatedBytes += st.blocks * 512;
      }
    }
    if (check.problems.length > 0) check.state = 'damaged';
    return check;
  }

  async removeSet(vm: string, stamp: string): Promise<void> {
    await rm(this.setDir(vm, stamp), { recursive: true, force: true });
  }

  async removePartials(vm: string, stamp: string): Promise<void> {
    const dir = this.setDir(vm, stamp);
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      if (name.endsWith(PARTIAL_SUFFIX)) await rm(join(dir, name), { force: true });
    }
  }

  async writeManifest(vm: string, stamp: string, manifest: SetManifest): Promise<string> {
    const path = join(this.setDir(vm, stamp), MANIFEST);
    const partial = path + PARTIAL_SUFFIX;
    const file = await open(partial, 'w', this.mode.fileMode);
    try {
      await applyFileMode(file, this.mode);
      await file.writeFile(renderManifest(manifest));
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(partial, path);
    return path;
  }
}

export { IMAGE_FILE };
