import { unsafeVmNameReason } from '../../domain/vm-names';
import { RemoteCommandError } from '../ssh/remote-command-error';
import { quote } from '../ssh/shell-quote';
import type { SshSession } from '../ssh/ssh-session';
import type { VmDisk } from '../hypervisor/driver';

export const IMAGE_PARTIAL_SUFFIX = '.partial';
export const MANIFEST = 'manifest.json';
const STAMP = /^\d{8}T\d{6}Z$/;
const TARGET = /^[a-z0-9]{1,32}$/i;
const FORMATS = new Set(['qcow2', 'raw']);

export interface DiskInfo {
  virtualSize: number;
  /** Bytes the file occupies on disk. */
  allocatedBytes: number;
}

export interface ImageSet {
  stamp: string;
  /** A manifest is written only after every image of the set was verified. */
  verified: boolean;
  bytes: number;
}

export interface VerifiedImage {
  path: string;
  bytes: number;
  virtualSize: number;
  sha256: string;
}

function refuse(host: string, message: string): RemoteCommandError {
  return new RemoteCommandError(`${host}: ${message}`, { kind: 'unsafe-remote-data', host });
}

/**
 * The hypervisor's image area, `<root>/<vm>/<stamp>/<target>.<format>`, driven with standard tools over SSH
 * (qemu-img, cp, sha256sum, df, find). Every path it touches is built from checked parts inside `root`.
 */
export class ImageArea {
  constructor(
    private readonly ssh: SshSession,
    readonly root: string,
  ) {}

  vmDir(vm: string): string {
    const reason = unsafeVmNameReason(vm);
    if (reason) throw refuse(this.ssh.label, `VM name ${JSON.stringify(vm)} ${reason}`);
    return `${this.root}/${vm}`;
  }

  setDir(vm: string, stamp: string): string {
    if (!STAMP.test(stamp)) throw refuse(this.ssh.label, `bad image stamp ${JSON.stringify(stamp)}`);
    return `${this.vmDir(vm)}/${stamp}`;
  }

  imagePath(vm: string, stamp: string, disk: VmDisk): string {
    if (!TARGET.test(disk.target)) throw refuse(this.ssh.label, `bad disk target ${JSON.stringify(disk.target)}`);
    if (!FORMATS.has(disk.format))
      throw refuse(this.ssh.label, `disk format ${JSON.stringify(disk.format)} is not supported`);
    return `${this.setDir(vm, stamp)}/${disk.target}.${disk.format}`;
  }

  async freeBytes(): Promise<number> {
    const out = await this.ssh.run({ shell: `mkdir -p ${quote(this.root)} && df -P -B1 ${quote(this.root)}` });
    const available = Number(out.toString('utf8').trim().split('\n').at(-1)?.split(/\s+/)[3]);
    if (!Number.isSafeInteger(available)) throw refuse(this.ssh.label, `cannot read free space of ${this.root}`);
    return available;
  }

  async diskInfo(path: string, format: string): Promise<DiskInfo> {
    // -U: the disk of a running VM is locked; reading its header is still safe.
    const out = await this.ssh.run(['qemu-img', 'info', '-U', '-f', format, '--output=json', path]);
    const info = JSON.parse(out.toString('utf8')) as { 'virtual-size'?: number; 'actual-size'?: number };
    if (typeof info['virtual-size'] !== 'number')
      throw refuse(this.ssh.label, `qemu-img info ${path}: no virtual size`);
    return { virtualSize: info['virtual-size'], allocatedBytes: info['actual-size'] ?? info['virtual-size'] };
  }

  /**
   * Copies a (stopped) VM's disk into the set as `<name>.partial`, flushes it and renames it. Idempotent:
   * a stale partial from a crashed attempt is discarded; a finished image is kept.
   */
  async createImage(vm: string, stamp: string, disk: VmDisk, signal?: AbortSignal): Promise<string> {
    const final = this.imagePath(vm, stamp, disk);
    const partial = final + IMAGE_PARTIAL_SUFFIX;
    const copy =
      disk.format === 'raw'
        ? `cp --sparse=always ${quote(disk.source)} "$partial"`
        : `qemu-img convert -f ${quote(disk.format)} -O ${quote(disk.format)} ${quote(disk.source)} "$partial"`;
    const script = [
      'set -e',
      `final=${quote(final)}; partial=${quote(partial)}`,
      'if [ -f "$final" ] && [ ! -e "$partial" ]; then exit 0; fi',
      `mkdir -p ${quote(this.setDir(vm, stamp))}`,
      'rm -f "$partial"',
      `${copy} || { rm -f "$partial"; exit 1; }`,
      'sync "$partial"',
      'mv -f "$partial" "$final"',
    ].join('\n');
    await this.ssh.run({ shell: script }, { signal, label: `imaging ${disk.source} to ${partial}` });
    return final;
  }

  /** Exists, right virtual size, `qemu-img check` clean (qcow2), SHA-256 taken on the hypervisor. */
  async verifyImage(
    path: string,
    format: string,
    expectedVirtualSize: number,
    signal?: AbortSignal,
  ): Promise<VerifiedImage> {
    const exists = await this.ssh.exec(['test', '-f', path], { signal });
    if (exists.exitCode !== 0) throw refuse(this.ssh.label, `image ${path} does not exist`);
    const info = await this.diskInfo(path, format);
    if (info.virtualSize !== expectedVirtualSize) {
      throw refuse(
        this.ssh.label,
        `image ${path} has virtual size ${info.virtualSize}, the VM's disk ${expectedVirtualSize}`,
      );
    }
    if (format === 'qcow2') await this.ssh.run(['qemu-img', 'check', '-q', '-f', 'qcow2', path], { signal });
    const out = await this.ssh.run(
      { shell: `stat -c %s ${quote(path)} && sha256sum < ${quote(path)} | cut -c1-64` },
      { signal },
    );
    const [bytesText = '', sha256 = ''] = out.toString('utf8').trim().split('\n');
    if (!/^[0-9a-f]{64}$/.test(sha256)) throw refuse(this.ssh.label, `no checksum for ${path}`);
    return { path, bytes: Number(bytesText), virtualSize: info.virtualSize, sha256 };
  }

  /** Marks a set verified: written last, through a partial name, so it exists only when the set is whole. */
  async writeManifest(vm: string, stamp: string, manifest: unknown): Promise<void> {
    const path = `${this.setDir(vm, stamp)}/${MANIFEST}`;
    await this.ssh.run(
      {
        shell: `cat > ${quote(path + IMAGE_PARTIAL_SUFFIX)} && mv -f ${quote(path + IMAGE_PARTIAL_SUFFIX)} ${quote(path)}`,
      },
      { input: `${JSON.stringify(manifest, null, 2)}\n` },
    );
  }

  async listSets(vm: string): Promise<ImageSet[]> {
    const dir = this.vmDir(vm);
    const out = await this.ssh.run({
      shell: `[ -d ${quote(dir)} ] || exit 0; find ${quote(dir)} -mindepth 1 -maxdepth 2 -printf '%y\\0%P\\0%s\\0'`,
    });
    const fields = out.toString('utf8').split('\0');
    const sets = new Map<string, ImageSet>();
    for (let i = 0; i + 2 < fields.length; i += 3) {
      const [type, rel = '', size] = fields.slice(i, i + 3);
      const [stamp = '', file] = rel.split('/');
      if (!STAMP.test(stamp)) continue; // not ours: never touched
      const set = sets.get(stamp) ?? { stamp, verified: false, bytes: 0 };
      if (type === 'f' && file) {
        set.bytes += Number(size);
        if (file === MANIFEST) set.verified = true;
      }
      sets.set(stamp, set);
    }
    return [...sets.values()].sort((a, b) => a.stamp.localeCompare(b.stamp));
  }

  async removeSet(vm: string, stamp: string): Promise<void> {
    await this.ssh.run(['rm', '-rf', this.setDir(vm, stamp)]);
  }

  /** Removes what an unfinished attempt left in a set (partials), keeping finished images. */
  async removePartials(vm: string, stamp: string): Promise<void> {
    const dir = this.setDir(vm, stamp);
    await this.ssh.run({
      shell: `[ -d ${quote(dir)} ] || exit 0; find ${quote(dir)} -maxdepth 1 -type f -name ${quote(`*${IMAGE_PARTIAL_SUFFIX}`)} -delete`,
    });
  }
}
