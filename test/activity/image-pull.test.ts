import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { ApplicationFailure } from '@temporalio/common';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities } from '../../activities';
import { createServices } from '../../activities/services';
import { SshSession, withSsh } from '../../adapters/ssh/ssh-session';
import { zstdPaysFor } from '../../adapters/transfer/stream-download';
import type { PullProgress } from '../../activities/store';
import { parseConfig } from '../../config/load';
import type { Config, TransferConfig } from '../../config/schema';
import type { VmImage } from '../../domain/weekly-summary';
import { startSshHost, type SandboxSshHost } from '../../scripts/sandbox/sshd-host';
import { PROJECT_ROOT } from '../../scripts/sandbox/paths';
import { writeConfigFile } from '../helpers/worker-process';
import { runActivity, runIn } from '../helpers/sandbox';
import { initStoreRoot } from '../../adapters/local/store-root';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy';

const STAMP = '20261129T050000Z';
const SIZE = 48 * 1024 * 1024;
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** The pull tests, for one bulk client (transfer.bulkClient): each client passes all of them. */
function pullTests(bulkClient: TransferConfig['bulkClient']): void {
  let root: string;
  let host: SandboxSshHost;
  let proxy: TcpProxy;
  let config: Config;
  let image: VmImage;
  let content: Buffer;

  /** The config with `overrides` (their transfer section merged into the base one, which names the client). */
  const configWith = (overrides: { transfer?: Partial<TransferConfig>; [section: string]: unknown } = {}) =>
    parseConfig({ ...config, ...overrides, transfer: { ...config.transfer, ...overrides.transfer } }, 'test', root);
  const activitiesFor = (overrides: Parameters<typeof configWith>[0] = {}) => {
    const c = configWith(overrides);
    return createActivities({
      config: c,
      services: createServices({ config: c, openSsh: (key) => SshSession.connect(key, c.hosts[key]!) }),
    });
  };

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'cluster-backup-pull-'));
    host = await startSshHost({ dir: join(root, 'ssh'), address: '127.0.0.23' });
    proxy = await startTcpProxy(host.config.host, host.config.port);
    const knownHostsFile = join(root, 'proxy_known_hosts');
    writeFileSync(knownHostsFile, `[127.0.0.1]:${proxy.port} ${host.hostPublicKey}\n`);
    const area = join(root, 'area');
    mkdirSync(join(area, 'alpha', STAMP), { recursive: true });
    content = randomBytes(SIZE);
    const path = join(area, 'alpha', STAMP, 'vda.qcow2');
    writeFileSync(path, content);
    image = { disk: 'vda', path, bytes: SIZE, virtualSize: SIZE, sha256: sha256(content) };
    config = parseConfig(
      {
        hosts: { hypervisor: { ...host.config, host: '127.0.0.1', port: proxy.port, knownHostsFile } },
        hypervisor: { host: 'hypervisor', imageArea: area },
        store: { root: join(root, 'store'), spaceMarginBytes: 0 },
        transfer: { bulkClient },
      },
      'test',
      root,
    );
    await initStoreRoot(config.store!.root);
  });
  after(async () => {
    await proxy.stop();
    await host.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('stores a byte-identical copy whose hash equals the hypervisor`s, and a manifest a human can check', async () => {
    const activities = activitiesFor();
    const connections = proxy.downstreamBytes.length;
    const stored = await runActivity(activities.pullImage, 'alpha', STAMP, image);
    // ssh2 carries the image over the activity's connection; openssh opens one of its own for it.
    assert.equal(proxy.downstreamBytes.length - connections, bulkClient === 'openssh' ? 2 : 1);
    assert.equal(stored.path, join(root, 'store', 'alpha', STAMP, 'vda.qcow2'));
    assert.equal(sha256(readFileSync(stored.path)), image.sha256);
    const manifestPath = await runActivity(activities.recordStoredSet, 'alpha', STAMP, [stored], [image]);
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
    assert.equal(manifest.images[0].sha256, image.sha256);
    assert.equal(manifest.images[0].source.sha256, image.sha256);
    assert.equal(manifest.images[0].file, 'vda.qcow2');
  });

  it('never keeps a copy whose hash differs from the hypervisor`s', async () => {
    const activities = activitiesFor();
    const wrong = { ...image, sha256: sha256(Buffer.from('something else')) };
    const stamp = '20261122T050000Z';
    await assert.rejects(runActivity(activities.pullImage, 'alpha', stamp, wrong), /differs from the source/);
    assert.deepEqual(readdirSync(join(root, 'store', 'alpha', stamp)), []);
  });

  it('detects a byte flipped on the wire, keeps none of it, and completes on the retry', async () => {
    const activities = activitiesFor();
    const stamp = '20261101T050000Z';
    proxy.flipNextAt(20 << 20);
    const heartbeats: PullProgress[] = [];
    const env = new MockActivityEnvironment();
    env.on('heartbeat', (d: PullProgress) => heartbeats.push({ ...d }));
    await assert.rejects(
      runIn(env, activities.pullImage, 'alpha', stamp, image),
      (err: unknown) => err instanceof ApplicationFailure && err.nonRetryable === false,
    );
    const target = join(root, 'store', 'alpha', stamp, 'vda.qcow2');
    assert.equal(existsSync(target), false, 'nothing under the real name');
    const partial = readFileSync(`${target}.cluster-backup-partial`);
    assert.ok(partial.length < 21 << 20, `the partial stops near the corruption (${partial.length} bytes)`);
    assert.ok(partial.equals(content.subarray(0, partial.length)), 'what was kept is the source`s own bytes');

    const retry = new MockActivityEnvironment({ heartbeatDetails: heartbeats.at(-1) });
    const stored = await runIn(retry, activities.pullImage, 'alpha', stamp, image);
    assert.equal(sha256(readFileSync(stored.path)), image.sha256);
  });

  for (const [transport, stamp] of [
    ['stream', '20261115T050000Z'],
    ['sftp', '20261116T050000Z'],
  ] as const) {
    it(`${transport}: fails fast on a dead link and resumes from the last offset without fetching the prefix again`, async () => {
      const activities = activitiesFor({
        transfer: { maxBytesPerSecond: 24 << 20 },
        store: { ...config.store, transport },
      });
      proxy.stallNextAfter(16 << 20);
      const heartbeats: PullProgress[] = [];
      const env = new MockActivityEnvironment();
      env.on('heartbeat', (d: PullProgress) => heartbeats.push({ ...d }));
      const started = Date.now();
      await assert.rejects(runIn(env, activities.pullImage, 'alpha', stamp, image));
      const failedAfter = Date.now() - started;
      assert.ok(failedAfter < 20_000, `a dead link took ${failedAfter} ms to fail`);
      const last = heartbeats.at(-1)!;
      assert.ok(last.offset > 0 && last.offset < SIZE, `resume offset ${last.offset}`);

      const first = proxy.downstreamBytes.length; // the stalled connection forwards nothing more
      const retry = new MockActivityEnvironment({ heartbeatDetails: last });
      const stored = await runIn(retry, activities.pullImage, 'alpha', stamp, image);
      assert.equal(sha256(readFileSync(stored.path)), image.sha256);
      const resent = proxy.downstreamBytes.slice(first).reduce((a, b) => a + b, 0);
      assert.ok(
        resent < SIZE - last.offset + (1 << 20),
        `second attempt moved ${resent} bytes, resumed at ${last.offset} of ${SIZE}`,
      );
      assert.equal(existsSync(`${stored.path}.cluster-backup-partial`), false);
    });
  }

  it('holds transfer.maxBytesPerSecond on the stream', async () => {
    const rate = 24 << 20;
    const activities = activitiesFor({ transfer: { maxBytesPerSecond: rate } });
    const started = Date.now();
    const stored = await runActivity(activities.pullImage, 'alpha', '20261117T050000Z', image);
    const took = Date.now() - started;
    assert.equal(sha256(readFileSync(stored.path)), image.sha256);
    // A lower bound only: uncapped, the same pull takes a fraction of this.
    assert.ok(took >= 0.9 * (SIZE / rate) * 1000, `${SIZE} bytes at most ${rate} B/s in ${took} ms`);
  });

  it('refuses, before any shutdown, a week whose images the store cannot hold', async () => {
    const activities = activitiesFor({
      store: { root: join(root, 'store'), spaceMarginBytes: Number.MAX_SAFE_INTEGER - SIZE * 4 },
    });
    const room = await runActivity(activities.storePreflight, 'alpha', '20261206T050000Z', SIZE);
    assert.equal(room.ok, false);
    assert.match(room.reason ?? '', /not enough space in the store/);
    // It may free only sets older than the newest verified one: the verified set of the first test stays.
    assert.ok(existsSync(join(root, 'store', 'alpha', STAMP, 'manifest.json')));
  });

  it('resumes a pull after its worker process was killed with SIGKILL, without fetching the prefix again', async () => {
    const stamp = '20261108T050000Z';
    const file = writeConfigFile(root, configWith({ transfer: { maxBytesPerSecond: 16 << 20 } }));
    const child = spawn(
      process.execPath,
      [join(PROJECT_ROOT, 'dist', 'test', 'helpers', 'pull-in-child.js'), file, JSON.stringify(image), stamp],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    const exited = new Promise<NodeJS.Signals | null>((resolve) =>
      child.once('exit', (_code, signal) => resolve(signal)),
    );
    let last: PullProgress | undefined;
    for await (const line of createInterface({ input: child.stdout! })) {
      last = JSON.parse(line) as PullProgress;
      if (last.offset > 8 << 20) {
        child.kill('SIGKILL');
        break;
      }
    }
    assert.equal(await exited, 'SIGKILL');
    assert.ok(last && last.offset > 0 && last.offset < SIZE, `killed at ${last?.offset}`);
    const first = proxy.downstreamBytes.length;
    const stored = await runIn(
      new MockActivityEnvironment({ heartbeatDetails: last }),
      activitiesFor().pullImage,
      'alpha',
      stamp,
      image,
    );
    assert.equal(sha256(readFileSync(stored.path)), image.sha256);
    const resent = proxy.downstreamBytes.slice(first).reduce((a, b) => a + b, 0);
    assert.ok(
      resent < SIZE - last.offset + (1 << 20),
      `moved ${resent} bytes after a kill at ${last.offset} of ${SIZE}`,
    );
  });

  it('removes the partial and keeps older backups when the store fills up mid-pull', async (t) => {
    const small = join(root, 'small-store');
    mkdirSync(small, { recursive: true });
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', small], { stdio: 'ignore' });
    } catch {
      t.skip('cannot mount a small tmpfs here (needs root)');
      return;
    }
    await initStoreRoot(small);
    try {
      const older = join(small, 'alpha', '20261101T050000Z');
      mkdirSync(older, { recursive: true });
      const olderImage = randomBytes(4 << 20);
      writeFileSync(join(older, 'vda.qcow2'), olderImage);
      writeFileSync(join(older, 'manifest.json'), '{}');
      const activities = activitiesFor({ store: { root: small, spaceMarginBytes: 0 } });
      const stamp = '20261129T050000Z';
      await assert.rejects(
        runActivity(activities.pullImage, 'alpha', stamp, image),
        (err: unknown) => err instanceof ApplicationFailure && err.type === 'StoreFull' && err.nonRetryable === true,
      );
      assert.deepEqual(readdirSync(join(small, 'alpha', stamp)), []);
      assert.equal(sha256(readFileSync(join(older, 'vda.qcow2'))), sha256(olderImage));
    } finally {
      execFileSync('umount', [small]);
    }
  });

  it('store.compression auto: zstd on the wire for a compressible image, not for random data', async () => {
    const stamp = '20261018T050000Z';
    const area = join(root, 'area', 'alpha', stamp);
    mkdirSync(area, { recursive: true });
    const sparse = Buffer.concat([randomBytes(2 << 20), Buffer.alloc(14 << 20)]);
    const path = join(area, 'vdc.raw');
    writeFileSync(path, sparse);
    const compressible = {
      disk: 'vdc',
      path,
      bytes: sparse.length,
      virtualSize: sparse.length,
      sha256: sha256(sparse),
    };
    const activities = activitiesFor({
      store: { root: join(root, 'store'), spaceMarginBytes: 0, compression: 'auto' },
    });
    const onWire = async (img: VmImage) => {
      const first = proxy.downstreamBytes.length;
      const stored = await runActivity(activities.pullImage, 'alpha', stamp, img);
      assert.equal(sha256(readFileSync(stored.path)), img.sha256);
      return proxy.downstreamBytes.slice(first).reduce((a, b) => a + b, 0);
    };
    const sparseSent = await onWire(compressible);
    assert.ok(sparseSent < 4 << 20, `${sparseSent} bytes on the wire for ${sparse.length} mostly zero`);
    // zstd adds little to random data on the wire: the decision itself shows that it goes without.
    const hv = configWith().hosts.hypervisor!;
    const decisions = await withSsh('hypervisor', hv, async (ssh) => [
      await zstdPaysFor(ssh, image.path, image.bytes),
      await zstdPaysFor(ssh, path, compressible.bytes),
    ]);
    assert.deepEqual(decisions, [false, true]);
  });

  it('can carry a compressible image as zstd on the wire: same bytes stored, far fewer sent, resumable', async () => {
    const area = join(root, 'area', 'alpha', '20261025T050000Z');
    mkdirSync(area, { recursive: true });
    const sparse = Buffer.concat([randomBytes(16 << 20), Buffer.alloc(32 << 20)]);
    const path = join(area, 'vdb.raw');
    writeFileSync(path, sparse);
    const compressible = {
      disk: 'vdb',
      path,
      bytes: sparse.length,
      virtualSize: sparse.length,
      sha256: sha256(sparse),
    };
    const activities = activitiesFor({
      store: { root: join(root, 'store'), spaceMarginBytes: 0, compression: 'zstd' },
    });

    const first = proxy.downstreamBytes.length;
    const stored = await runActivity(activities.pullImage, 'alpha', '20261025T050000Z', compressible);
    assert.equal(sha256(readFileSync(stored.path)), compressible.sha256);
    const sent = proxy.downstreamBytes.slice(first).reduce((a, b) => a + b, 0);
    assert.ok(sent < 20 << 20, `${sent} bytes on the wire for ${sparse.length}`);

    // Resume: a partial holding the first 24 MiB, as a killed attempt would have left it.
    const stamp = '20261026T050000Z';
    const target = join(root, 'store', 'alpha', stamp, 'vdb.raw');
    mkdirSync(join(target, '..'), { recursive: true });
    writeFileSync(`${target}.cluster-backup-partial`, sparse.subarray(0, 24 << 20));
    const again = proxy.downstreamBytes.length;
    const resumed = await runIn(
      new MockActivityEnvironment({ heartbeatDetails: { image: 'vdb.raw', offset: 24 << 20, size: sparse.length } }),
      activities.pullImage,
      'alpha',
      stamp,
      compressible,
    );
    assert.equal(sha256(readFileSync(resumed.path)), compressible.sha256);
    const resent = proxy.downstreamBytes.slice(again).reduce((a, b) => a + b, 0);
    assert.ok(resent < 2 << 20, `resumed in the zeros, yet ${resent} bytes were sent`);
  });
}

// ssh2 over the activity's own connection; openssh over a connection of its own, through the same proxy.
for (const bulkClient of ['ssh2', 'openssh'] as const) {
  describe(`pulling verified images into the store (bulk client ${bulkClient}), through a proxy that can kill the link`, () =>
    pullTests(bulkClient));
}
