/**
 * Benchmark (not a test): store.engine restic ingest of a disk image through the product (an SshSession
 * to a loopback sshd, startRawRead: nbdcopy from a read-only qemu-nbd with SHA-256 on the "hypervisor",
 * hashed again on arrival, ResticImageSets.storeDisk = restic backup --stdin; see bench/ingest-one.ts) vs
 * restic backup --stdin run by hand on the same file in the same run: `ssh ... cat file | restic backup
 * --stdin` over the same sshd, and `restic backup --stdin < file` locally. Every run stores into a fresh
 * repository (version 2, its password file 0600), so deduplication never favours a later run. A random and
 * a mostly-zero image (one random MiB in ten); the product reads them as raw files, and also as a qcow2
 * copy made by qemu-img convert. Prints MB/s, ratios, the product's peak RSS, best and worst of the rounds,
 * and where the time goes (SSH and the read alone, restic alone with and without compression).
 * Size: BENCH_IMAGE_MB (default 1024); rounds: BENCH_ROUNDS (default 3).
 */
import { writeImage } from './bench-image';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rawReadLine } from '../adapters/hypervisor/raw-read';
import { quote } from '../adapters/ssh/shell-quote';
import { startSshHost } from '../scripts/sandbox/sshd-host';

const MB = Number(process.env.BENCH_IMAGE_MB ?? 1024);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const BYTES = MB * 2 ** 20;

interface Run {
  seconds: number;
  /** The product's own process (node: SSH, hashing, piping). */
  maxRssMiB?: number;
  /** The largest of the process and its children (restic), as wait4 reports it. */
  treeRssMiB?: number;
  /** user + system CPU seconds of the whole run. */
  cpuSeconds?: number;
}

/** Runs argv under /usr/bin/time: elapsed seconds, peak RSS of the tree, CPU seconds. */
function timedRun(argv: string[], env: NodeJS.ProcessEnv, stdinFile?: string): Run & { stdout: string } {
  const timeFile = `${tmpdir()}/cluster-backup-bench-time-${process.pid}`;
  const stdin = stdinFile ? openSync(stdinFile, 'r') : 'ignore';
  try {
    const start = process.hrtime.bigint();
    const child = spawnSync('/usr/bin/time', ['-f', '%M %U %S', '-o', timeFile, ...argv], {
      env,
      stdio: [stdin, 'pipe', 'pipe'],
      maxBuffer: 64 << 20,
    });
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    if (child.status !== 0) throw new Error(`${argv.join(' ')}: ${child.stderr.toString().slice(-2000)}`);
    const [rssKiB, user, sys] = readFileSync(timeFile, 'utf8').trim().split('\n').at(-1)!.split(' ').map(Number);
    return { seconds, treeRssMiB: rssKiB! / 1024, cpuSeconds: user! + sys!, stdout: child.stdout.toString() };
  } finally {
    if (typeof stdin === 'number') closeSync(stdin);
    rmSync(timeFile, { force: true });
  }
}

async function main(): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'cluster-backup-bench-'));
  const host = await startSshHost({ dir: join(root, 'ssh'), address: '127.0.0.7' });
  const cleanups: (() => void)[] = [];
  try {
    const h = host.config;
    const passwordFile = join(root, 'restic-password');
    writeFileSync(passwordFile, randomBytes(24).toString('hex'), { mode: 0o600 });
    const repository = join(root, 'repo');
    // In memory: restic alone without the disk under its repository.
    const memoryRepository = join(mkdtempSync('/dev/shm/cluster-backup-bench-'), 'repo');
    cleanups.push(() => rmSync(join(memoryRepository, '..'), { recursive: true, force: true }));
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      RESTIC_REPOSITORY: repository,
      RESTIC_PASSWORD_FILE: passwordFile,
    };
    delete env.RESTIC_PASSWORD;
    delete env.RESTIC_PASSWORD_COMMAND;
    delete env.RESTIC_REPOSITORY_FILE;
    /** A fresh repository for every run: no run finds another's chunks. */
    const freshRepository = (repo = repository) => {
      rmSync(repo, { recursive: true, force: true });
      execFileSync('restic', ['--no-cache', 'init', '--repository-version', '2'], {
        env: { ...env, RESTIC_REPOSITORY: repo },
        stdio: 'ignore',
      });
      execFileSync('sync');
    };
    const ssh = [
      'ssh',
      '-i',
      h.privateKeyFile,
      '-o',
      `UserKnownHostsFile=${h.knownHostsFile}`,
      '-o',
      'BatchMode=yes',
      '-p',
      String(h.port),
      `${h.user}@${h.host}`,
    ]
      .map(quote)
      .join(' ');
    // As the product runs it (no cache, compression auto) minus --json and the tags.
    const restic = (compression = 'auto') =>
      `restic --no-cache backup --stdin --stdin-filename bench/vda.raw --compression ${compression} --quiet`;
    const shell = (line: string) => ['bash', '-c', `set -o pipefail; ${line}`];
    const version = execFileSync('restic', ['version'], { encoding: 'utf8' }).trim();
    console.log(
      `restic ingest, ${MB} MiB, same sshd (${h.host}), ${version}; every run into a fresh repository (v2, compression auto);` +
        ` ratio = by-hand time / product time (>= 0.9 wanted)`,
    );

    for (const kind of ['random', 'mostly-zero'] as const) {
      const path = join(root, `${kind}.raw`);
      const sha256 = writeImage(path, kind, MB);
      const qcow2 = join(root, `${kind}.qcow2`);
      execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', path, qcow2]);
      const product = (file: string, format: string) => (): Run => {
        const job = { host: h, repository, passwordFile, path: file, format, bytes: BYTES, sha256 };
        const run = timedRun([process.execPath, join(__dirname, 'ingest-one.js'), JSON.stringify(job)], env);
        const own = JSON.parse(run.stdout) as { seconds: number; maxRssMiB: number };
        return { ...run, seconds: own.seconds, maxRssMiB: own.maxRssMiB };
      };
      const contenders: [string, () => Run][] = [
        ['product, raw file', product(path, 'raw')],
        ['product, qcow2 (qemu-img convert)', product(qcow2, 'qcow2')],
        ['by hand: ssh cat | restic --stdin', () => timedRun(shell(`${ssh} cat -- ${quote(path)} | ${restic()}`), env)],
        ['by hand: restic --stdin < file', () => timedRun(shell(restic()), env, path)],
      ];
      // Rounds interleaved (every contender once per round), so drift on this shared machine hits all alike.
      const runs = new Map<string, Run[]>(contenders.map(([name]) => [name, []]));
      for (let round = 0; round < ROUNDS; round++)
        for (const [name, run] of contenders) {
          freshRepository();
          runs.get(name)!.push(run());
        }
      // Where the time goes: each part alone (best of the rounds).
      const parts: [string, () => Run][] = [
        ['ssh cat > /dev/null', () => timedRun(shell(`${ssh} cat -- ${quote(path)} > /dev/null`), env)],
        [
          'ssh <product read line> > /dev/null',
          () =>
            timedRun(
              shell(`${ssh} ${quote(rawReadLine({ source: path, format: 'raw', type: 'file' }))} > /dev/null 2>&1`),
              env,
            ),
        ],
        ['restic --stdin < file, --compression off', () => timedRun(shell(restic('off')), env, path)],
        [
          'restic --stdin < file, repository in /dev/shm',
          () => timedRun(shell(restic()), { ...env, RESTIC_REPOSITORY: memoryRepository }, path),
        ],
      ];
      for (const [name, run] of parts)
        runs.set(
          name,
          Array.from({ length: ROUNDS }, () => {
            freshRepository(name.includes('/dev/shm') ? memoryRepository : repository);
            return run();
          }),
        );
      rmSync(memoryRepository, { recursive: true, force: true });
      rmSync(repository, { recursive: true, force: true });

      const mbps = (s: number) => ((MB * 1.048576) / s).toFixed(0).padStart(4);
      const best = (name: string) => Math.min(...runs.get(name)!.map((r) => r.seconds));
      const worst = (name: string) => Math.max(...runs.get(name)!.map((r) => r.seconds));
      const line = (name: string) => {
        const rs = runs.get(name)!;
        const fastest = rs.find((r) => r.seconds === best(name))!;
        // CPU of the local process tree only (ssh client, node, restic): sshd and the remote read are not in it.
        const cpu =
          fastest.cpuSeconds === undefined ? '' : `, CPU ${(fastest.cpuSeconds / fastest.seconds).toFixed(2)} cores`;
        const rss =
          rs[0]!.maxRssMiB === undefined
            ? `peak RSS ${Math.max(...rs.map((r) => r.treeRssMiB ?? 0)).toFixed(0)} MiB`
            : `peak RSS ${Math.max(...rs.map((r) => r.maxRssMiB!)).toFixed(0)} MiB (node), ${Math.max(...rs.map((r) => r.treeRssMiB ?? 0)).toFixed(0)} MiB (largest incl. restic)`;
        return `  ${name.padEnd(46)} best ${mbps(best(name))} MB/s, worst ${mbps(worst(name))} MB/s${cpu}; ${rss}`;
      };
      console.log(`\n${kind} (best and worst of ${ROUNDS}; MB = 10^6 bytes):`);
      for (const [name] of contenders) console.log(line(name));
      const p = 'product, raw file';
      for (const hand of ['by hand: ssh cat | restic --stdin', 'by hand: restic --stdin < file'])
        console.log(
          `  ratio product (raw) / ${hand.slice(9)}: best ${(best(hand) / best(p)).toFixed(2)}, worst ${(worst(hand) / worst(p)).toFixed(2)}`,
        );
      console.log('  where the time goes (each part alone):');
      for (const [name] of parts) console.log(line(name));
      rmSync(path, { force: true });
      rmSync(qcow2, { force: true });
    }
  } finally {
    await host.stop();
    for (const cleanup of cleanups) cleanup();
    rmSync(root, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
