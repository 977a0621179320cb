import { PRIVATE_UMASK } from '../ssh/remote-modes';
import { quote } from '../ssh/shell-quote';
import type { SshSession } from '../ssh/ssh-session';

/** A restored image taking a VM's disk's place (restore --replace), and the name the old disk keeps. */
export interface DiskSwap {
  /** The pushed, verified image (0600, the SSH user's). */
  pushed: string;
  /** The VM's disk file. */
  final: string;
  keep: string;
}

/**
 * The disk files a restore moves on the hypervisor: swap a pushed image in, put the old disk back, discard
 * what was pushed, and create the files a restored domain's consoles write to. Every path that reaches the
 * shell is quoted; each call is idempotent.
 */
export class RemoteDisks {
  constructor(private readonly ssh: SshSession) {}

  /**
   * Keeps the disk file under `keep` and renames the pushed image to its name, first giving the image the
   * old disk's owner, group and mode (`--reference`): on a host where libvirt does not chown disks
   * (dynamic_ownership=0) QEMU opens the file as it is. A mode is never wider than the old disk's. Once the
   * pushed image is gone it has taken its place (a retry after `mv final keep` takes `keep` as the
   * reference). True when the old disk is kept.
   */
  async swapIn(swap: DiskSwap): Promise<boolean> {
    const [pushed, final, keep] = [quote(swap.pushed), quote(swap.final), quote(swap.keep)];
    const out = await this.ssh.run({
      shell: [
        `if [ -e ${pushed} ]; then`,
        `  ref=${final}; [ -e "$ref" ] || ref=${keep}`,
        `  if [ -e "$ref" ]; then chown --reference="$ref" -- ${pushed} && chmod --reference="$ref" -- ${pushed} || exit 1; fi`,
        `  if [ -e ${final} ] && [ ! -e ${keep} ]; then mv -T ${final} ${keep}; fi`,
        `  mv -fT ${pushed} ${final}`,
        'fi',
        `[ -e ${keep} ] && echo kept || true`,
      ].join('\n'),
    });
    return out.toString('utf8').trim() === 'kept';
  }

  /** After a failure: the kept disk file goes back under its own name. */
  async putBack(swap: Omit<DiskSwap, 'pushed'>): Promise<void> {
    const [final, keep] = [quote(swap.final), quote(swap.keep)];
    await this.ssh.run({ shell: `if [ -e ${keep} ]; then mv -fT ${keep} ${final}; fi` });
  }

  /** Removes pushed files (and whatever else is named), then the folder `dir` with what is left in it. */
  async discard(files: string[], dir?: string): Promise<void> {
    if (files.length > 0) await this.ssh.run(['rm', '-f', '--', ...files]);
    if (dir) await this.ssh.run(['rm', '-rf', '--', dir]);
  }

  /** Creates each file empty and 0600 (a domain's console logs, before QEMU writes to them). */
  async createPrivateFiles(files: string[]): Promise<void> {
    if (files.length === 0) return;
    const quoted = files.map(quote).join(' ');
    await this.ssh.run({ shell: `${PRIVATE_UMASK} && touch -- ${quoted} && chmod 0600 -- ${quoted}` });
  }
}
