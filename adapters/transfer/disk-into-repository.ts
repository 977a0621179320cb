import { startRawRead } from '../hypervisor/raw-read';
import type { VmDisk } from '../hypervisor/driver';
import type { ResticImageSets } from '../image-sets/restic-image-sets';
import type { BackupResult } from '../restic/restic';
import type { SshSession } from '../ssh/ssh-session';
import { hashingTap } from '../local/hashing-tap';

export interface DiskIntoRepository {
  stored: BackupResult;
  /** SHA-256 taken on the hypervisor while it read the disk. */
  sourceSha256: string;
  /** SHA-256 and byte count of what arrived here (and went into restic). */
  arrivedSha256: string;
  arrivedBytes: number;
}

/**
 * One disk from the hypervisor into the repository: read once there as raw bytes (hashed there), hashed
 * again here on its way into `restic backup --stdin`. A read that breaks ends the backup without a
 * snapshot and is the error thrown (the link, not restic); comparing the hashes is the caller's.
 */
export async function diskIntoRepository(
  ssh: SshSession,
  source: Pick<VmDisk, 'source' | 'format' | 'type'>,
  repo: ResticImageSets,
  target: { vm: string; stamp: string; disk: string; bytes: number },
  options: { onProgress?: (bytesDone: number) => void; signal?: AbortSignal } = {},
): Promise<DiskIntoRepository> {
  const read = await startRawRead(ssh, source);
  const arrival = hashingTap();
  const hashing = arrival.stream;
  read.stdout.on('error', (error) => hashing.destroy(error));
  read.stdout.pipe(hashing);
  const remote = read.finished.catch((error: Error) => {
    hashing.destroy(error); // a failed read must never end the stream as if it were whole
    throw error;
  });
  remote.catch(() => undefined); // awaited below; a failure meanwhile is the backup's failure first
  const stored = await repo.storeDisk({ ...target, stdin: hashing, ...options }).catch(async (error: Error) => {
    read.stdout.destroy(); // closes the channel: the remote read ends on a broken pipe
    // A read that broke (link cut, disk unreadable) is the cause: its error says so, and is retried.
    const cause = await remote.then(
      () => undefined,
      (readError: Error) => readError,
    );
    throw cause ?? error;
  });
  const { sha256 } = await remote.catch(async (error: Error) => {
    await repo.restic.forgetSnapshots([stored.snapshotId]);
    throw error;
  });
  return { stored, sourceSha256: sha256, arrivedSha256: arrival.sha256(), arrivedBytes: arrival.bytes() };
}
