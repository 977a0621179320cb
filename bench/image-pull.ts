/**
 * Benchmark (not a test): pulling a VM image through the product (one stream over SSH, SHA-256 while
 * streaming, carried by each transfer.bulkClient: ssh2 and OpenSSH's `ssh`; also store.transport: sftp and
 * store.compression: zstd on both clients) vs rsync -a, scp and sftp -c aes128-gcm over the same sshd in the
 * same run, for a random and a mostly-zero image. BENCH_ROUNDS rounds (default 3), every contender once per
 * round; prints best and worst MB/s, the ratios best vs best and worst vs worst, and each product case's
 * peak RSS (marked when over 250 MiB). Size: BENCH_IMAGE_MB (default 1024).
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

/** Peak RSS every product process stays under (issue 23); a case above it is marked. */
const RSS_LIMIT_MIB = 250;
const GCM = 'aes128-gcm@openssh.com';
const SFTP = 'sftp -c aes128-gcm';
const RSYNC_ZSTD = 'rsync -a --compress-choice=zstd';

interface Run {
  seconds: number;
  maxRssMiB?: number;
  /** CPU seconds of the product's process (all its threads) and of its children (ssh, zstd). */
  cpuSeconds?: number;
  childCpuSeconds?: number;
}

function timed(fn: () => void): number {
  const start = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - start) / 1e9;
}

async function main(): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'cluster-backup-bench-'));
  const host = await startSshHost({ dir: join(root, 'ssh'), address: '127.0.0.25' });
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
    const variantFile = (name: string, store: Record<string, unknown>, transfer: Record<string, unknown>) => {
      const file = join(root, `config-${name}.json`);
      writeFileSync(
        file,
        JSON.stringify({
          ...config,
          store: { ...config.store, ...store },
          transfer: { ...config.transfer, ...transfer },
        }),
      );
      return file;
    };
    /** The product's cases: each bulk client (transfer.bulkClient) on the stream, raw and zstd; SFTP. */
    const products: Record<string, string> = {};
    for (const client of ['ssh2', 'openssh'] as const) {
      products[`product, stream, ${client}`] = variantFile(`stream-${client}`, {}, { bulkClient: client });
    }
    products['product, store.transport: sftp'] = variantFile('sftp', { transport: 'sftp' }, {});
    for (const client of ['ssh2', 'openssh'] as const) {
      products[`product, zstd, ${client}`] = variantFile(
        `zstd-${client}`,
        { compression: 'zstd' },
        { bulkClient: client },
      );
    }
    console.log(
      `image pull, ${MB} MiB, same sshd (${h.host}), ${ROUNDS} rounds taking turns; best / worst MB/s;` +
        ` ratio = tool time / product time (> 1: product faster), best vs best / worst vs worst`,
    );

    for (const [i, kind] of (['random', 'mostly-zero'] as const).entries()) {
      const path = join(area, `vd${'ab'[i]}.raw`);
      const sha256 = writeImage(path, kind, MB);
      const image = { disk: `vd${'ab'[i]}`, path, bytes: MB * 2 ** 20, virtualSize: MB * 2 ** 20, sha256 };
      const out = (name: string) => join(root, 'out', kind, name);
      let pulls = 0;
      const pullOnce = (file: string): Run => {
        const stamp = `2026${String(++pulls).padStart(4, '0')}T00000${i}Z`; // a set of its own each time
        const child = spawnSync(process.execPath, [join(__dirname, 'pull-one.js'), file, JSON.stringify(image), stamp]);
        if (child.status !== 0) throw new Error(child.stderr.toString());
        return JSON.parse(child.stdout.toString()) as Run;
      };
      const sshCommand = `ssh ${sshArgs.join(' ')} -p ${h.port}`;
      const tools: Record<string, () => void> = {
        'rsync -a': () => execFileSync('rsync', ['-a', '-e', sshCommand, remote(path), out('rsync')]),
        scp: () => execFileSync('scp', ['-q', ...sshArgs, '-P', String(h.port), remote(path), out('scp')]),
        [SFTP]: () =>
          execFileSync('sftp', ['-q', ...sshArgs, '-c', GCM, '-P', String(h.port), remote(path), out('sftp')]),
      };
      if (kind === 'mostly-zero') {
        tools[RSYNC_ZSTD] = () =>
          execFileSync('rsync', [
            '-a',
            '-z',
            '--compress-choice=zstd',
            '-e',
            sshCommand,
            remote(path),
            out('rsync-zstd'),
          ]);
      }
      // Every contender once per round, in turn: the load of a shared machine swings between rounds.
      const runs: Record<string, Run[]> = {};
      const contenders: [string, () => Run][] = [
        ...Object.entries(products).map(([name, file]): [string, () => Run] => [name, () => pullOnce(file)]),
        ...Object.entries(tools).map(([name, run]): [string, () => Run] => [name, () => ({ seconds: timed(run) })]),
      ];
      for (let round = 0; round < ROUNDS; round++) {
        for (const [name, run] of contenders) {
          rmSync(join(root, 'store', 'bench'), { recursive: true, force: true }); // a fresh copy every time
          rmSync(join(root, 'out', kind), { recursive: true, force: true });
          mkdirSync(join(root, 'out', kind), { recursive: true });
          execFileSync('sync');
          try {
            (runs[name] ??= []).push(run());
          } catch (err) {
            console.log(`  ${name} failed: ${(err as Error).message.split('\n')[0]}`);
          }
        }
      }
      const best = (name: string) => Math.min(...(runs[name] ?? []).map((r) => r.seconds));
      const worst = (name: string) => Math.max(...(runs[name] ?? []).map((r) => r.seconds));
      const mbps = (s: number) => ((MB * 1.048576) / s).toFixed(0).padStart(5);
      const ratios = (name: string, tool: string) =>
        runs[tool]?.length
          ? `${(best(tool) / best(name)).toFixed(2)} / ${(worst(tool) / worst(name)).toFixed(2)}x ${tool}`
          : '';
      console.log(`\n${kind}:`);
      for (const name of Object.keys(tools)) {
        if (runs[name]?.length) console.log(`  ${name.padEnd(34)} ${mbps(best(name))} / ${mbps(worst(name))} MB/s`);
      }
      for (const name of Object.keys(products)) {
        if (!runs[name]?.length) continue;
        const rss = Math.max(...runs[name].map((r) => r.maxRssMiB ?? 0));
        const fastest = runs[name].find((r) => r.seconds === best(name))!;
        const against = name.includes('zstd') && kind === 'mostly-zero' ? [SFTP, RSYNC_ZSTD] : [SFTP, 'rsync -a'];
        console.log(
          `  ${name.padEnd(34)} ${mbps(best(name))} / ${mbps(worst(name))} MB/s   ` +
            `${against.map((tool) => ratios(name, tool)).join(', ')}   ` +
            `peak RSS ${rss.toFixed(0)} MiB${rss < RSS_LIMIT_MIB ? '' : ` (over the ${RSS_LIMIT_MIB} MiB bound)`}, ` +
            `CPU s (fastest run): node ${fastest.cpuSeconds?.toFixed(1)}, ssh/zstd ${fastest.childCpuSeconds?.toFixed(1)}`,
        );
      }
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
