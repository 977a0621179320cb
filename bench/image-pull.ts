/**
 * Benchmark (not a test): pulling a VM image through the product (by default one stream over SSH, SHA-256
 * while streaming; also with store.transport: sftp and store.compression: zstd) vs rsync -a, scp and
 * sftp -c aes128-gcm over the same sshd in the same run, for a random and a mostly-zero image. Prints MB/s,
 * ratios and the product's peak RSS. Size: BENCH_IMAGE_MB (default 1024).
 */
import { writeImage } from './bench-image';
import { execFileSync, spawnSync } from 'node:child_process';
import { initStoreRoot } from '../adapters/local/store-root';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../config/load';
import { startSshHost } from '../scripts/sandbox/sshd-host';

const MB = Number(process.env.BENCH_IMAGE_MB ?? 1024);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

function timed(fn: () => void): number {
  const start = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - start) / 1e9;
}

async function main(): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'cluster-backup-bench-'));
  const host = await startSshHost({ dir: join(root, 'ssh'), address: '127.0.0.7' });
  try {
    const h = host.config;
    const sshArgs = ['-i', h.privateKeyFile, '-o', `UserKnownHostsFile=${h.knownHostsFile}`, '-o', 'BatchMode=yes'];
    const remote = (p: string) => `${h.user}@${h.host}:${p}`;
    const area = join(root, 'area', 'bench', '20260101T000000Z');
    mkdirSync(area, { recursive: true });
    const config = parseConfig(
      {
        hosts: { hypervisor: h },
        hypervisor: { host: 'hypervisor', imageArea: join(root, 'area') },
        store: { root: join(root, 'store') },
        ...(process.env.BENCH_PARALLEL_READS
          ? { transfer: { parallelReads: Number(process.env.BENCH_PARALLEL_READS) } }
          : {}),
      },
      'bench',
      root,
    );
    await initStoreRoot(config.store!.root);
    const configFile = join(root, 'config.json');
    writeFileSync(configFile, JSON.stringify(config));
    const variantFile = (name: string, store: Record<string, unknown>) => {
      const file = join(root, `config-${name}.json`);
      writeFileSync(file, JSON.stringify({ ...config, store: { ...config.store, ...store } }));
      return file;
    };
    const variants: Record<string, string> = {
      'store.transport: sftp': variantFile('sftp', { transport: 'sftp' }),
      'store.compression: zstd': variantFile('zstd', { compression: 'zstd' }),
    };
    console.log(`image pull, ${MB} MiB, same sshd (${h.host}); ratio = tool time / product time (> 1: product faster)`);

    for (const [i, kind] of (['random', 'mostly-zero'] as const).entries()) {
      const path = join(area, `vd${'ab'[i]}.raw`);
      const sha256 = writeImage(path, kind, MB);
      const image = { disk: `vd${'ab'[i]}`, path, bytes: MB * 2 ** 20, virtualSize: MB * 2 ** 20, sha256 };
      const out = (name: string) => join(root, 'out', kind, name);
      mkdirSync(join(root, 'out', kind), { recursive: true });
      // Best of ROUNDS for every contender: this machine's two shared cores make single runs noisy.
      let pulls = 0;
      const pullOnce = (file = configFile) => {
        rmSync(join(root, 'store', 'bench'), { recursive: true, force: true }); // as the tools' rounds: a fresh copy each time
        execFileSync('sync');
        const stamp = `2026${String(++pulls).padStart(4, '0')}T00000${i}Z`; // a set of its own each time
        const child = spawnSync(process.execPath, [join(__dirname, 'pull-one.js'), file, JSON.stringify(image), stamp]);
        if (child.status !== 0) throw new Error(child.stderr.toString());
        return JSON.parse(child.stdout.toString()) as { seconds: number; maxRssMiB: number };
      };
      const bestOf = (file = configFile) => {
        const runs = Array.from({ length: ROUNDS }, () => pullOnce(file));
        return {
          seconds: Math.min(...runs.map((p) => p.seconds)),
          maxRssMiB: Math.max(...runs.map((p) => p.maxRssMiB)),
        };
      };
      const product = bestOf();
      const tools: [string, () => void][] = [
        [
          'rsync -a',
          () =>
            execFileSync('rsync', ['-a', '-e', `ssh ${sshArgs.join(' ')} -p ${h.port}`, remote(path), out('rsync')]),
        ],
        ['scp', () => execFileSync('scp', ['-q', ...sshArgs, '-P', String(h.port), remote(path), out('scp')])],
        [
          'sftp -c aes128-gcm',
          () =>
            execFileSync('sftp', [
              '-q',
              ...sshArgs,
              '-c',
              'aes128-gcm@openssh.com',
              '-P',
              String(h.port),
              `${remote(path)}`,
              out('sftp'),
            ]),
        ],
      ];
      if (kind === 'mostly-zero') {
        tools.push([
          'rsync -a --compress-choice=zstd',
          () =>
            execFileSync('rsync', [
              '-a',
              '-z',
              '--compress-choice=zstd',
              '-e',
              `ssh ${sshArgs.join(' ')} -p ${h.port}`,
              remote(path),
              out('rsync-zstd'),
            ]),
        ]);
      }
      const mbps = (s: number) => ((MB * 1.048576) / s).toFixed(0).padStart(5);
      console.log(
        `\n${kind} (best of ${ROUNDS}): product (defaults: stream, SHA-256 while streaming) ${mbps(product.seconds)} MB/s, peak RSS ${product.maxRssMiB.toFixed(0)} MiB`,
      );
      for (const [name, file] of Object.entries(variants)) {
        const variant = bestOf(file);
        console.log(
          `  ${`product, ${name}`.padEnd(32)} ${mbps(variant.seconds)} MB/s   vs product ${(product.seconds / variant.seconds).toFixed(2)}x, peak RSS ${variant.maxRssMiB.toFixed(0)} MiB`,
        );
      }
      let best = Infinity;
      for (const [name, run] of tools) {
        execFileSync('sync');
        let seconds = NaN;
        try {
          seconds = Math.min(
            ...Array.from({ length: ROUNDS }, () => {
              rmSync(join(root, 'out', kind), { recursive: true, force: true }); // every round copies the whole file
              mkdirSync(join(root, 'out', kind), { recursive: true });
              execFileSync('sync');
              return timed(run);
            }),
          );
        } catch (err) {
          console.log(`  ${name.padEnd(32)} failed: ${(err as Error).message.split('\n')[0]}`);
          continue;
        }
        if (!name.startsWith('rsync')) best = Math.min(best, seconds); // the plain OpenSSH tools
        console.log(`  ${name.padEnd(32)} ${mbps(seconds)} MB/s   ratio ${(seconds / product.seconds).toFixed(2)}x`);
      }
      console.log(`  product vs best OpenSSH tool: ${(best / product.seconds).toFixed(2)}x`);
    }
  } finally {
    await host.stop();
    rmSync(root, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
