/**
 * Benchmark (not a test): the daily copy through the product vs `rsync -a` over the same sshd, same run.
 * Cases: one large file and 2,000 small files on disk (BENCH_DISK_DIR, default /var/tmp), the small files
 * again on tmpfs (/dev/shm), and a no-op re-run of each. Prints MB/s and ratios. The product flushes what
 * it writes before naming it (rsync does not): on disk that is the honest comparison.
 * Sizes: BENCH_LARGE_MB (default 1024; 0 skips it), BENCH_SMALL_COUNT (2000), BENCH_SMALL_KB (100).
 * BENCH_SSH_ADDRESS: the loopback address of the sandbox's sshd (default: the sandbox's own pick).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { blankDayResult } from '../domain/daily-summary';
import { calendarDay, type CalendarDay } from '../domain/julian-day';
import { renderPathTemplate } from '../domain/path-template';
import { runActivity, supimSandbox, type SupimSandbox } from '../test/helpers/sandbox';

const LARGE_MB = Number(process.env.BENCH_LARGE_MB ?? 1024);
const SMALL_COUNT = Number(process.env.BENCH_SMALL_COUNT ?? 2000);
const SMALL_KB = Number(process.env.BENCH_SMALL_KB ?? 100);
const DISK_DIR = process.env.BENCH_DISK_DIR ?? '/var/tmp';
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SHM_DIR = '/dev/shm';
const SSH_ADDRESS = process.env.BENCH_SSH_ADDRESS;

const fileSystemType = (dir: string) => execFileSync('stat', ['-f', '-c', '%T', dir], { encoding: 'utf8' }).trim();

function writeLarge(folder: string): number {
  mkdirSync(folder, { recursive: true });
  const path = join(folder, 'large.dat');
  const block = randomBytes(16 << 20);
  writeFileSync(path, '');
  for (let written = 0; written < LARGE_MB * 2 ** 20; written += block.length)
    writeFileSync(path, block, { flag: 'a' });
  utimesSync(path, 1_700_000_000, 1_700_000_000);
  return LARGE_MB * 2 ** 20;
}

function writeSmall(folder: string): number {
  mkdirSync(folder, { recursive: true });
  for (let i = 0; i < SMALL_COUNT; i++) {
    const path = join(folder, `f${String(i).padStart(5, '0')}.dat`);
    writeFileSync(path, randomBytes(SMALL_KB * 1024));
    utimesSync(path, 1_700_000_000, 1_700_000_000);
  }
  return SMALL_COUNT * SMALL_KB * 1024;
}

function rsync(box: SupimSandbox, source: string, target: string): void {
  const h = box.compute.config;
  const ssh = `ssh -i ${h.privateKeyFile} -o UserKnownHostsFile=${h.knownHostsFile} -o BatchMode=yes -p ${h.port}`;
  mkdirSync(target, { recursive: true });
  execFileSync('rsync', ['-a', '-e', ssh, `${h.user}@${h.host}:${source}/`, `${target}/`]);
}

/**
 * The bench's own housekeeping runs outside its process (`rm -rf`): Node's recursive rm of 100,000 files holds
 * their names, and the peak RSS printed is the product's, not the bench's.
 */
const removeTree = (path: string) => execFileSync('rm', ['-rf', '--', path]);

async function timed(fn: () => Promise<unknown> | unknown): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e9;
}

/**
 * Fresh copies by the product and by rsync, alternating (BENCH_ROUNDS, default 3: a shared machine's load
 * swings between runs), the best of each compared; then a no-op re-run of each.
 */
async function compare(box: SupimSandbox, name: string, day: CalendarDay, bytes: number): Promise<void> {
  const source = renderPathTemplate(box.sourceTemplate, day);
  // The same folder for both: on ext4 the cost of creating a file depends on where its folder's inodes
  // are allocated (40x apart between two folders of one file system on the machine this was written on).
  const target = blankDayResult(day, await box.activities.getDailySettings(), 'copied').destination;
  const products: number[] = [];
  const baselines: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    removeTree(target);
    execFileSync('sync');
    products.push(await timed(() => runActivity(box.activities.backupSupimDay, day)));
    removeTree(target);
    execFileSync('sync');
    baselines.push(await timed(() => rsync(box, source, target)));
  }
  const [product, baseline] = [Math.min(...products), Math.min(...baselines)];
  const spread = (times: number[]) => `${Math.min(...times).toFixed(2)}-${Math.max(...times).toFixed(2)} s`;
  const rsyncNoop = await timed(() => rsync(box, source, target));
  const productNoop = await timed(() => runActivity(box.activities.backupSupimDay, day));
  const mbps = (s: number) => (bytes / s / 1e6).toFixed(0).padStart(6);
  console.log(
    `${name.padEnd(44)} product ${mbps(product)} MB/s  rsync -a ${mbps(baseline)} MB/s  ratio ${(baseline / product).toFixed(2)}x` +
      `   | no-op: product ${productNoop.toFixed(3)} s, rsync ${rsyncNoop.toFixed(3)} s, ratio ${(rsyncNoop / productNoop).toFixed(2)}x` +
      `   | ${ROUNDS} rounds: product ${spread(products)}, rsync ${spread(baselines)}`,
  );
}

/** The process's peak RSS (MiB) once the product's last run there is done, before the sandbox is removed. */
let peakRss = 0;

async function benchIn(dir: string, withLarge: boolean): Promise<void> {
  const box = await supimSandbox({ under: dir, ...(SSH_ADDRESS ? { address: SSH_ADDRESS } : {}) });
  try {
    const where = `${dir} (${fileSystemType(box.root)})`;
    const smallDay = calendarDay('2026-01-02');
    const smallBytes = writeSmall(renderPathTemplate(box.sourceTemplate, smallDay));
    if (withLarge) {
      const largeDay = calendarDay('2026-01-01');
      const largeBytes = writeLarge(renderPathTemplate(box.sourceTemplate, largeDay));
      await compare(box, `1 x ${LARGE_MB} MiB, ${where}`, largeDay, largeBytes);
    }
    await compare(box, `${SMALL_COUNT} x ${SMALL_KB} KiB, ${where}`, smallDay, smallBytes);
    peakRss = process.resourceUsage().maxRSS / 1024;
  } finally {
    await box.compute.stop();
    removeTree(box.root);
    await box.cleanup();
  }
}

async function main(): Promise<void> {
  console.log(`cluster-backup daily copy vs rsync -a, same sshd, same run; ratio > 1 = product faster`);
  await benchIn(DISK_DIR, LARGE_MB > 0);
  if (existsSync(SHM_DIR)) await benchIn(SHM_DIR, false);
  console.log(`peak RSS of the product process: ${peakRss.toFixed(0)} MiB (the bench's process, its runs of the product)`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
