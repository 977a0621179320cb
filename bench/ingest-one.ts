/**
 * Child process of bench/store-ingest.ts: one product ingest, alone in its process so its peak RSS is its
 * own. The pieces storeFrozenDisk runs, without Temporal (no heartbeats, no overlay or file-version checks):
 * an SshSession to the hypervisor, startRawRead of the disk (nbdcopy from a read-only qemu-nbd, SHA-256
 * there), hashed again on arrival, ResticImageSets.storeDisk (restic backup --stdin), both hashes compared.
 */
import { ResticImageSets } from '../adapters/image-sets/restic-image-sets';
import { Restic } from '../adapters/restic/restic';
import { SshSession } from '../adapters/ssh/ssh-session';
import { diskIntoRepository } from '../adapters/transfer/disk-into-repository';
import type { HostConfig } from '../config/schema';

interface Job {
  host: HostConfig;
  repository: string;
  passwordFile: string;
  path: string;
  format: string;
  bytes: number;
  sha256: string;
}

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2] ?? '') as Job;
  const start = process.hrtime.bigint();
  const ssh = await SshSession.connect('hypervisor', job.host);
  try {
    const repo = new ResticImageSets(new Restic({ repository: job.repository, passwordFile: job.passwordFile }));
    const { stored, sourceSha256, arrivedSha256, arrivedBytes } = await diskIntoRepository(
      ssh,
      { source: job.path, format: job.format, type: 'file' },
      repo,
      { vm: 'bench', stamp: '20260101T000000Z', disk: 'vda', bytes: job.bytes },
    );
    if (sourceSha256 !== job.sha256 || arrivedSha256 !== job.sha256 || arrivedBytes !== job.bytes)
      throw new Error(
        `hash mismatch: written ${job.sha256}, hypervisor ${sourceSha256}, arrived ${arrivedSha256} (${arrivedBytes} bytes)`,
      );
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    console.log(
      JSON.stringify({ seconds, maxRssMiB: process.resourceUsage().maxRSS / 1024, dataAdded: stored.dataAdded }),
    );
  } finally {
    ssh.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
