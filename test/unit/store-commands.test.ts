import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statfsSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { createRestoreStoreActivities } from '../../activities/restore-store';
import { createStoreActivities } from '../../activities/store';
import { createServices } from '../../activities/services';
import { initStoreRoot } from '../../adapters/local/store-root';
import { parseConfig } from '../../config/load';
import type { VmImage } from '../../domain/weekly-summary';
import { previewStoreRetention, verifyStore } from '../../scripts/commands/store';
import { CLI_JS } from '../../scripts/sandbox/paths';
import { runActivity } from '../helpers/sandbox';

const OLD = '20261101T050000Z';
const NEW = '20261108T050000Z';

describe('store verify: a scrub of the backup store against its manifests', () => {
  const root = mkdtempSync(join(tmpdir(), 'cluster-backup-scrub-'));
  const storeRoot = join(root, 'store');
  const raw = {
    hosts: { hv: { host: '127.0.0.1', user: 'backup', privateKeyFile: '/k', knownHostsFile: '/kh' } },
    hypervisor: { host: 'hv', imageArea: '/img' },
    store: { root: storeRoot },
  };
  const config = parseConfig(raw, 'test', root);
  const configFile = join(root, 'config.json');
  const { recordStoredSet } = createStoreActivities({
    config,
    services: createServices({ config, openSsh: () => Promise.reject(new Error('no SSH in a scrub')) }),
  });

  /** A set as a pull leaves it: the image file, then the manifest the product writes. */
  async function storedSet(vm: string, stamp: string, file: string, content: Buffer): Promise<string> {
    const dir = join(storeRoot, vm, stamp);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, file), content);
    const sha256 = createHash('sha256').update(content).digest('hex');
    const image: VmImage = {
      disk: file.split('.')[0]!,
      path: join(dir, file),
      bytes: content.length,
      virtualSize: 1 << 30,
      sha256,
    };
    await runActivity(recordStoredSet, vm, stamp, [image], [{ ...image, path: `/img/${vm}/${stamp}/${file}` }]);
    return join(dir, file);
  }

  before(async () => {
    writeFileSync(configFile, JSON.stringify(raw));
    await storedSet('alpha', OLD, 'vda.qcow2', randomBytes(1 << 20));
    await storedSet('epsilon', NEW, 'vda.raw', randomBytes(3 << 20));
    const rotten = await storedSet('alpha', NEW, 'vda.qcow2', randomBytes(1 << 20));
    writeFileSync(rotten, randomBytes(1 << 20)); // same size, other bytes: bit rot as a scrub meets it
    const lost = await storedSet('beta', OLD, 'vdb.raw', randomBytes(4096));
    rmSync(lost);
    mkdirSync(join(storeRoot, 'beta', NEW), { recursive: true }); // a pull that never completed
    writeFileSync(join(storeRoot, 'beta', NEW, 'vdb.raw.cluster-backup-partial'), 'half');
    mkdirSync(join(storeRoot, 'gamma', OLD), { recursive: true });
    writeFileSync(
      join(storeRoot, 'gamma', OLD, 'manifest.json'),
      JSON.stringify({ images: [{ file: '../../../etc/passwd', bytes: 1, sha256: 'x' }] }),
    );
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('finds what is intact, what rotted, what is missing, and what never completed', async () => {
    const lines: string[] = [];
    const { checks, ok } = await verifyStore(config, undefined, (line) => lines.push(line));
    assert.equal(ok, false);
    assert.deepEqual(
      checks.map((c) => `${c.vm}/${c.stamp} ${c.state}`),
      [
        `alpha/${OLD} ok`,
        `alpha/${NEW} damaged`,
        `beta/${OLD} damaged`,
        `beta/${NEW} unverified`,
        `epsilon/${NEW} ok`,
        `gamma/${OLD} damaged`,
      ],
    );
    assert.match(
      lines.join('\n'),
      new RegExp(`alpha/${NEW}: DAMAGED: vda.qcow2: SHA-256 [0-9a-f]{64}, the manifest says`),
    );
    assert.match(lines.join('\n'), /beta\/\S+: DAMAGED: vdb\.raw is missing/);
    assert.match(
      lines.join('\n'),
      /gamma\/\S+: DAMAGED: manifest\.json images\[0\] names "\.\.\/\.\.\/\.\.\/etc\/passwd", not an image file name/,
    );
    assert.equal(lines.at(-1), '2 set(s) ok, 3 damaged, 1 unverified (never completed)');
  });

  it('exits 0 only when no set of the VMs asked for is damaged, and refuses a hostile VM name', () => {
    const cli = (...args: string[]) =>
      spawnSync(process.execPath, [CLI_JS, '--config', configFile, 'store', 'verify', ...args], { encoding: 'utf8' });
    const alpha = cli('--vm', 'alpha');
    assert.equal(alpha.status, 1, alpha.stderr);
    assert.match(alpha.stdout, new RegExp(`alpha/${OLD}: ok \\(1 image\\(s\\)`));
    const beta = cli('--vm', 'beta');
    assert.equal(beta.status, 1, 'a missing image is damage');
    const epsilon = cli('--vm', 'epsilon');
    assert.equal(epsilon.status, 0, epsilon.stderr);
    assert.match(epsilon.stdout, /1 set\(s\) ok, 0 damaged, 0 unverified/);
    const hostile = cli('--vm', '../alpha');
    assert.notEqual(hostile.status, 0);
    assert.match(hostile.stderr, /VM name "\.\.\/alpha"/);
  });

  it('refuses a manifest that names another VM or stamp than its folder, in a scrub and in a restore', async () => {
    // alpha's intact set copied by hand under another VM's name, and under a newer stamp of alpha's own.
    const LATER = '20261115T050000Z';
    const copies = [join(storeRoot, 'delta', OLD), join(storeRoot, 'alpha', LATER)];
    for (const copy of copies) cpSync(join(storeRoot, 'alpha', OLD), copy, { recursive: true });
    try {
      const lines: string[] = [];
      const { checks, ok } = await verifyStore(config, ['delta', 'alpha'], (line) => lines.push(line));
      assert.equal(ok, false);
      assert.deepEqual(
        checks.map((c) => `${c.vm}/${c.stamp} ${c.state}`),
        [`delta/${OLD} damaged`, `alpha/${OLD} ok`, `alpha/${NEW} damaged`, `alpha/${LATER} damaged`],
      );
      const text = lines.join('\n');
      assert.match(
        text,
        new RegExp(`delta/${OLD}: DAMAGED: manifest\\.json says vm "alpha", but it is in the folder of delta/${OLD}`),
      );
      assert.match(
        text,
        new RegExp(
          `alpha/${LATER}: DAMAGED: manifest\\.json says stamp "${OLD}", but it is in the folder of alpha/${LATER}`,
        ),
      );

      // A restore reads the same manifest: refused for good (not retried), whether the stamp is asked for or not.
      const { readStoredSet } = createRestoreStoreActivities({
        config,
        services: createServices({ config, openSsh: () => Promise.reject(new Error('no SSH')) }),
      });
      const refused = (pattern: RegExp) => (err: unknown) =>
        err instanceof ApplicationFailure && err.nonRetryable && err.type === 'DamagedSet' && pattern.test(err.message);
      await assert.rejects(runActivity(readStoredSet, 'delta', OLD), refused(/manifest\.json says vm "alpha"/));
      await assert.rejects(runActivity(readStoredSet, 'alpha', undefined), refused(new RegExp(`says stamp "${OLD}"`)));
      assert.equal((await runActivity(readStoredSet, 'alpha', OLD)).stamp, OLD, 'the real set is still restorable');
    } finally {
      for (const copy of copies) rmSync(copy, { recursive: true, force: true });
      rmSync(join(storeRoot, 'delta'), { recursive: true, force: true });
    }
  });
});

describe('store retention dry run: lists what would go and deletes nothing', () => {
  const root = mkdtempSync(join(tmpdir(), 'cluster-backup-dryrun-'));
  const storeRoot = join(root, 'store');
  const stamps = ['20261011T050000Z', '20261018T050000Z', '20261025T050000Z', '20261101T050000Z', '20261108T050000Z'];
  const activitiesWith = (store: Record<string, unknown>) => {
    const config = parseConfig(
      {
        hosts: { hv: { host: '127.0.0.1', user: 'backup', privateKeyFile: '/k', knownHostsFile: '/kh' } },
        hypervisor: { host: 'hv', imageArea: '/img' },
        store: { root: storeRoot, ...store },
      },
      'test',
      root,
    );
    return {
      config,
      ...createStoreActivities({
        config,
        services: createServices({ config, openSsh: () => Promise.reject(new Error('no SSH here')) }),
      }),
    };
  };
  const keepTwo = { keepLast: 2, keepWeekly: 0, keepMonthly: 0 };
  const present = () => readdirSync(join(storeRoot, 'zeta')).sort();

  before(async () => {
    await initStoreRoot(storeRoot);
    for (const stamp of stamps) {
      mkdirSync(join(storeRoot, 'zeta', stamp), { recursive: true });
      writeFileSync(join(storeRoot, 'zeta', stamp, 'vda.qcow2'), randomBytes(64 << 10));
      writeFileSync(join(storeRoot, 'zeta', stamp, 'manifest.json'), '{"images":[]}');
    }
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('after a pull: the summary gets what the policy would delete, the store keeps every set', async () => {
    const { applyStoreRetention } = activitiesWith({ retention: { ...keepTwo, dryRun: true } });
    const outcome = await runActivity(applyStoreRetention, 'zeta', stamps[4]!);
    assert.deepEqual(outcome.deleted, []);
    assert.deepEqual(
      outcome.wouldDelete,
      stamps
        .slice(0, 3)
        .reverse()
        .map((s) => `zeta/${s} (beyond the retention policy)`),
    );
    assert.deepEqual(present(), stamps);
  });

  it('before a VM stops: lists the sets that would make room, keeps them, and so does not make room', async () => {
    const { storePreflight } = activitiesWith({
      retention: { ...keepTwo, dryRun: true },
      // Far beyond what the store's free space moves by while other tests write: no room, whatever they do.
      spaceMarginBytes: 1 << 30,
    });
    const free = statfsSync(storeRoot).bavail * statfsSync(storeRoot).bsize;
    const room = await runActivity(storePreflight, 'zeta', '20261115T050000Z', free);
    assert.equal(room.ok, false);
    assert.match(room.reason ?? '', /store\.retention\.dryRun: nothing deleted/);
    assert.ok((room.wouldDelete ?? []).length >= 1, JSON.stringify(room));
    assert.equal(room.wouldDelete![0], `zeta/${stamps[0]} (beyond the retention policy)`, 'oldest first');
    // What last week's set occupies on disk (its allocated blocks), not its apparent size.
    const newest = join(storeRoot, 'zeta', stamps.at(-1)!);
    const allocated = readdirSync(newest).reduce((sum, f) => sum + statSync(join(newest, f)).blocks * 512, 0);
    assert.equal(room.previousBytes, allocated, 'last week`s set size, for the report');
    assert.deepEqual(present(), stamps);
  });

  it('`store retention` prints the plan with its reasons; without dryRun the weekly run deletes exactly that', async () => {
    const { config, applyStoreRetention } = activitiesWith({ retention: keepTwo });
    const lines: string[] = [];
    await previewStoreRetention(config, ['zeta'], (line) => lines.push(line));
    assert.deepEqual(lines, [
      'policy: keep last 2, weekly 0, monthly 0',
      `zeta/${stamps[4]}: keep (newest verified)`,
      `zeta/${stamps[3]}: keep (last 2)`,
      ...stamps
        .slice(0, 3)
        .reverse()
        .map((s) => `zeta/${s}: would delete (beyond the retention policy)`),
    ]);
    assert.deepEqual(present(), stamps, 'the preview deleted nothing');
    const outcome = await runActivity(applyStoreRetention, 'zeta', stamps[4]!);
    assert.equal(outcome.wouldDelete, undefined);
    assert.deepEqual(present(), stamps.slice(3));
  });
});
