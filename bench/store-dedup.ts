/**
 * Benchmark (not a test): what eight weekly backups of a changing disk cost in the restic store. A raw data
 * disk of BENCH_DISK_MB (default 1024) random MiB is rewritten in random 64 KiB blocks, BENCH_CHANGE_PERCENT
 * (default 2) of it between backups, and each week is stored through the product's own path: the disk read
 * once on the "hypervisor" (a loopback sshd; nbdcopy from a read-only qemu-nbd, SHA-256 there), hashed on
 * arrival, into restic backup --stdin. Prints what each week added, the repository's size against one set's
 * raw size (target <= 1.3x after eight weeks), and that an unchanged disk adds < 2 %. BENCH_WEEKS: default 8.
 * BENCH_BLOCK_KB: the rewritten blocks' sizes, one series each (default 64,4096): restic's chunks average
 * 1 MiB (content-defined, 512 KiB to 8 MiB), so a scattered 64 KiB write makes a whole chunk new.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ResticImageSets } from '../adapters/image-sets/restic-image-sets';
import { Restic } from '../adapters/restic/restic';
import { SshSession } from '../adapters/ssh/ssh-session';
import { diskIntoRepository } from '../adapters/transfer/disk-into-repository';
import { startSshHost } from '../scripts/sandbox/sshd-host';

const MiB = 1024 * 1024;
const DISK_MB = Number(process.env.BENCH_DISK_MB ?? 1024);
const CHANGE = Number(process.env.BENCH_CHANGE_PERCENT ?? 2) / 100;
const WEEKS = Number(process.env.BENCH_WEEKS ?? 8);
/** Sizes of the rewritten blocks, one series of weeks each: scattered small writes cost a whole chunk each. */
const BLOCKS_KB = (process.env.BENCH_BLOCK_KB ?? '64,4096').split(',').map(Number);

const pct = (n: number) => `${(100 * n).toFixed(2)} %`;

async function series(blockKb: number) {
  const BLOCK = blockKb * 1024;
  console.log(`\n${pct(CHANGE)} of a ${DISK_MB} MiB disk rewritten per week in random ${blockKb} KiB blocks:`);
  const root = mkdtempSync(join(tmpdir(), 'cluster-backup-bench-dedup-'));
  const host = await startSshHost({ dir: join(root, 'ssh'), address: '127.0.0.16' });
  const disk = join(root, 'data.raw');
  const passwordFile = join(root, 'restic.key');
  writeFileSync(passwordFile, `${randomBytes(24).toString('base64')}\n`, { mode: 0o600 });
  const repo = new ResticImageSets(new Restic({ repository: join(root, 'repo'), passwordFile }));
  const ssh = await SshSession.connect('hypervisor', host.config);
  try {
    const fd = openSync(disk, 'w');
    for (let i = 0; i < DISK_MB; i++) writeSync(fd, randomBytes(MiB));
    closeSync(fd);
    await repo.restic.init();
    const size = DISK_MB * MiB;
    const store = async (week: number) => {
      const started = process.hrtime.bigint();
      const stamp = `202601${String(week + 1).padStart(2, '0')}T000000Z`;
      const into = await diskIntoRepository(ssh, { source: disk, format: 'raw', type: 'file' }, repo, {
        vm: 'bench',
        stamp,
        disk: 'vdb',
        bytes: size,
      });
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      if (into.sourceSha256 !== into.arrivedSha256)
        throw new Error('hash at the source differs from the hash on arrival');
      const result = into.stored;
      return { added: result.dataAdded, seconds };
    };
    const first = await store(0);
    console.log(
      `week 1: ${(first.added / MiB).toFixed(1)} MiB added (${pct(first.added / size)}), ${(size / MiB / first.seconds).toFixed(0)} MB/s`,
    );
    for (let week = 1; week < WEEKS; week++) {
      const blocks = Math.round((size * CHANGE) / BLOCK);
      const out = openSync(disk, 'r+');
      for (let b = 0; b < blocks; b++) writeSync(out, randomBytes(BLOCK), 0, BLOCK, randomInt(size / BLOCK) * BLOCK);
      closeSync(out);
      const { added, seconds } = await store(week);
      console.log(
        `week ${week + 1}: ${pct(CHANGE)} rewritten, ${(added / MiB).toFixed(1)} MiB added (${pct(added / size)}), ${(size / MiB / seconds).toFixed(0)} MB/s`,
      );
    }
    const unchanged = await store(WEEKS);
    console.log(
      `unchanged disk stored again: ${(unchanged.added / MiB).toFixed(2)} MiB added (${pct(unchanged.added / size)}; target < 2 %)`,
    );
    const stats = await repo.restic.stats('raw-data');
    const onDisk = Number(execFileSync('du', ['-sb', join(root, 'repo')], { encoding: 'utf8' }).split('\t')[0]);
    console.log(
      `after ${WEEKS + 1} backups: repository ${(stats.total_size / MiB).toFixed(0)} MiB stored, ${(onDisk / MiB).toFixed(0)} MiB on disk = ${(onDisk / size).toFixed(2)}x one set's raw size (target <= 1.3x)`,
    );
  } finally {
    ssh.close();
    await host.stop();
    rmSync(root, { recursive: true, force: true });
  }
}

async function main() {
  for (const kb of BLOCKS_KB) await series(kb);
}

void main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
