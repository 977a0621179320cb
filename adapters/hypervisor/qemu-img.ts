import { quote } from '../ssh/shell-quote';
import type { SshSession } from '../ssh/ssh-session';

/** What `qemu-img info --output=json` says of an image, as far as the product reads it. */
export interface QemuImgInfo {
  'virtual-size'?: number;
  'actual-size'?: number;
  'full-backing-filename'?: string;
  'backing-filename'?: string;
  'backing-filename-format'?: string;
}

/**
 * qemu-img on the hypervisor, over SSH: the one place in the product that runs it. Every path goes in
 * after `--` (or quoted, in the shell lines a tracked remote process runs).
 */
export class QemuImg {
  constructor(private readonly ssh: SshSession) {}

  /** The image's header; -U: a running VM holds the lock, reading the header is still safe. */
  async info(path: string, format: string): Promise<QemuImgInfo> {
    const out = await this.ssh.run(['qemu-img', 'info', '-U', '-f', format, '--output=json', '--', path]);
    return JSON.parse(out.toString('utf8')) as QemuImgInfo;
  }

  /** Writes a (shut-off domain's) qcow2 overlay's data into its backing file. */
  async commit(overlay: string): Promise<void> {
    await this.ssh.run(['qemu-img', 'commit', '-q', '-f', 'qcow2', '--', overlay]);
  }

  /** A new qcow2 file over `backing`, created under `umask` (a shell `umask …` prefix). */
  async createOverlay(path: string, backing: { path: string; format: string }, umask: string): Promise<void> {
    const words = ['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', backing.format, '-b', backing.path, path];
    await this.ssh.run({ shell: `${umask} && ${words.map(quote).join(' ')}` });
  }

  /**
   * The shell line that converts `from` into `to` (for a tracked remote process, which runs a script):
   * reads files and block devices alike; -S: zero runs are left as holes in a raw image.
   */
  static convertLine(from: { path: string; format: string }, to: { path: string; format: string }): string {
    const sparse = to.format === 'raw' ? '-S 64k ' : '';
    return `qemu-img convert -f ${quote(from.format)} -O ${quote(to.format)} ${sparse}-- ${quote(from.path)} ${quote(to.path)}`;
  }

  /** The shell line that fails unless a qcow2 image is consistent (`qemu-img check`). */
  static checkLine(path: string): string {
    return `qemu-img check -q -f qcow2 ${quote(path)}`;
  }
}
