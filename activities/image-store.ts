import { mkdir, open, readdir, rename, rm, stat, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import type { StoredSet } from '../domain/retention';
import { unsafeVmNameReason } from '../domain/vm-names';
import { MANIFEST } from './adapters/hypervisor/image-area';

const STAMP = /^\d{8}T\d{6}Z$/;

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
