import { SHA256_FUNCTION } from '../ssh/remote-hash';
import type { Readable } from 'node:stream';
import type { VmDisk } from './driver';
import { RemoteCommandError } from '../ssh/remote-command-error';
import { quote } from '../ssh/shell-quote';
import type { SshSession } from '../ssh/ssh-session';

/** A disk read once on the hypervisor as raw bytes; `finished` gives the SHA-256 taken there in the same pass. */
export interface RawRead {
  stdout: Readable;
  finished: Promise<{ sha256: string }>;
}

const HASH_LINE = /^([0-9a-f]{64})$/m;

/**
 * The remote pipeline. A file disk (qcow2 or raw) goes through qemu-nbd (read-only) and nbdcopy, which
 * knows the image's extents: holes and unallocated clusters are never read from the disk, and reach the
 * stream as zeros (what a raw image holds there; the store deduplicates them). A raw block device is read
 * by cat. `tee` hands every byte to the hash (remote-hash.ts) too, whose line goes to stderr; pipefail makes any failing
 * part fail the whole, and `wait` lets the hash line out before the exit.
 */
export function rawReadLine(disk: Pick<VmDisk, 'source' | 'format' | 'type'>): string {
  if (!/^[a-z0-9]+$/.test(disk.format)) throw new Error(`bad disk format ${JSON.stringify(disk.format)}`);
  const reader =
    disk.type === 'block' && disk.format === 'raw'
      ? `cat -- ${quote(disk.source)}`
      : `nbdcopy -- [ qemu-nbd -r -f ${disk.format} -- ${quote(disk.source)} ] -`;
  const script = `set -o pipefail; ${SHA256_FUNCTION}; ${reader} | tee >(cb_sha256 >&2); rc=$?; wait $!; exit $rc`;
  return `exec bash -c ${quote(script)}`;
}

/** Starts the read of one disk on the hypervisor; the caller consumes stdout, then awaits `finished`. */
export async function startRawRead(
  ssh: SshSession,
  disk: Pick<VmDisk, 'source' | 'format' | 'type'>,
): Promise<RawRead> {
  const command = rawReadLine(disk);
  const { stdout, finished } = await ssh.execStream({ shell: command });
  return {
    stdout,
    finished: finished.then((result) => {
      if (result.exitCode !== 0) throw ssh.commandFailure(command, result, `reading ${disk.source}`);
      const hash = HASH_LINE.exec(result.stderr);
      if (!hash)
        throw new RemoteCommandError(`${ssh.label}: reading ${disk.source}: no SHA-256 from the hypervisor`, {
          kind: 'transfer',
          host: ssh.label,
          command,
        });
      return { sha256: hash[1]! };
    }),
  };
}
