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
 * Keeps the disk file under `keep` and renames the pushed image to its name, first giving the image the old
 * disk's owner, group and mode (`--reference`): on a host where libvirt does not chown disks
 * (dynamic_ownership=0) QEMU opens the file as it is. A mode is never wider than the old disk's. Idempotent:
 * once the pushed image is gone it has taken its place (a retry after `mv final keep` takes `keep` as the
 * reference). True when the old disk is kept.
 */
export async function swapInDisk(ssh: SshSession, swap: DiskSwap): Promise<boolean> {
  const [pushed, final, keep] = [quote(swap.pushed), quote(swap.final), quote(swap.keep)];
  const out = await ssh.run({
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

/** After a failure: the kept disk file goes back under its own name. Idempotent. */
export async function putDiskBack(ssh: SshSession, swap: Omit<DiskSwap, 'pushed'>): Promise<void> {
  const [final, keep] = [quote(swap.final), quote(swap.keep)];
  await ssh.run({ shell: `if [ -e ${keep} ]; then mv -fT ${keep} ${final}; fi` });
}
