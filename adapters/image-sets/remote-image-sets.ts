import { RemoteCommandError } from '../ssh/remote-command-error';
import { PASSABLE_UMASK, PRIVATE_UMASK } from '../ssh/remote-modes';
import { quote } from '../ssh/shell-quote';
import type { SshSession } from '../ssh/ssh-session';
import {
  DISK_TARGET,
  type ImageSets,
  type ImageSetSummary,
  PARTIAL_SUFFIX,
  setPathParts,
  STAMP,
  UnsafeImageSetPath,
  vmFolder,
} from './image-sets';
import { type ImageFormat, MANIFEST, parseManifest, renderManifest, type SetManifest } from './manifest';

/**
 * Image sets on a remote host (the hypervisor's image area), driven with standard tools over SSH (find, df,
 * rm, cat, mv). Every path it touches is built from checked parts inside `root`.
 */
export class RemoteImageSets implements ImageSets {
  constructor(
    private readonly ssh: SshSession,
    readonly root: string,
  ) {}

  get where(): string {
    return `the image area ${this.root} on ${this.ssh.label}`;
  }

  private refuse(err: unknown): never {
    if (err instanceof UnsafeImageSetPath)
      throw new RemoteCommandError(`${this.ssh.label}: ${err.message}`, {
        kind: 'unsafe-remote-data',
        host: this.ssh.label,
      });
    throw err;
  }

  vmDir(vm: string): string {
    try {
      return `${this.root}/${vmFolder(vm)}`;
    } catch (err) {
      this.refuse(err);
    }
  }

  setDir(vm: string, stamp: string): string {
    try {
      return `${this.root}/${setPathParts(vm, stamp).join('/')}`;
    } catch (err) {
      this.refuse(err);
    }
  }

  imagePath(vm: string, stamp: string, disk: { target: string }, format: ImageFormat): string {
    if (!DISK_TARGET.test(disk.target))
      this.refuse(new UnsafeImageSetPath(`bad disk target ${JSON.stringify(disk.target)}`));
    return `${this.setDir(vm, stamp)}/${disk.target}.${format}`;
  }

  async freeBytes(): Promise<number> {
    const out = await this.ssh.run({
      shell: `${PASSABLE_UMASK} && mkdir -p -- ${quote(this.root)} && df -P -B1 ${quote(this.root)}`,
    });
    const available = Number(out.toString('utf8').trim().split('\n').at(-1)?.split(/\s+/)[3]);
    if (!Number.isSafeInteger(available)) this.refuse(new UnsafeImageSetPath(`cannot read free space of ${this.root}`));
    return available;
  }

  async listSets(vm: string): Promise<ImageSetSummary[]> {
    const dir = this.vmDir(vm);
    // %s apparent size, %b 512-byte blocks allocated: sparse images are counted at what they take.
    const out = await this.ssh.run({
      shell: `[ -d ${quote(dir)} ] || exit 0; find ${quote(dir)} -mindepth 1 -maxdepth 2 -printf '%y\\0%P\\0%s\\0%b\\0'`,
    });
    const fields = out.toString('utf8').split('\0');
    const sets = new Map<string, ImageSetSummary>();
    for (let i = 0; i + 3 < fields.length; i += 4) {
      const [type, rel = '', size, blocks] = fields.slice(i, i + 4);
      const [stamp = '', file] = rel.split('/');
      if (!STAMP.test(stamp)) continue; // not ours: never touched
      const set = sets.get(stamp) ?? { stamp, verified: false, bytes: 0, allocatedBytes: 0 };
      if (type === 'f' && file) {
        set.bytes += Number(size);
        set.allocatedBytes += Number(blocks) * 512;
        if (file === MANIFEST) set.verified = true;
      }
      sets.set(stamp, set);
    }
    return [...sets.values()].sort((a, b) => a.stamp.localeCompare(b.stamp));
  }

  async readManifest(vm: string, stamp: string): Promise<SetManifest | undefined> {
    const path = `${this.setDir(vm, stamp)}/${MANIFEST}`;
    const result = await this.ssh.exec({ shell: `[ -f ${quote(path)} ] || exit 3; cat ${quote(path)}` });
    if (result.exitCode === 3) return undefined;
    if (result.exitCode !== 0) throw this.ssh.commandFailure(`cat ${path}`, result);
    return parseManifest(result.stdout.toString('utf8'), { vm, stamp });
  }

  async writeManifest(vm: string, stamp: string, manifest: SetManifest): Promise<string> {
    const path = `${this.setDir(vm, stamp)}/${MANIFEST}`;
    const partial = path + PARTIAL_SUFFIX;
    await this.ssh.run(
      {
        shell: `${PRIVATE_UMASK} && cat > ${quote(partial)} && sync ${quote(partial)} && mv -f ${quote(partial)} ${quote(path)}`,
      },
      { input: renderManifest(manifest) },
    );
    return path;
  }

  async removeSet(vm: string, stamp: string): Promise<void> {
    await this.ssh.run(['rm', '-rf', '--', this.setDir(vm, stamp)]);
  }

  /** Removes what an unfinished attempt left in a set (partials), keeping finished images. */
  async removePartials(vm: string, stamp: string): Promise<void> {
    const dir = this.setDir(vm, stamp);
    await this.ssh.run({
      shell: `[ -d ${quote(dir)} ] || exit 0; find ${quote(dir)} -maxdepth 1 -type f -name ${quote(`*${PARTIAL_SUFFIX}`)} -delete`,
    });
  }
}
