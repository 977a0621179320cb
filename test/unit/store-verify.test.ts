import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createStoreActivities } from '../../activities/store';
import { parseConfig } from '../../config/load';
import type { VmImage } from '../../domain/weekly-summary';
import { verifyStore } from '../../scripts/commands/store-verify';
import { PROJECT_ROOT } from '../../scripts/sandbox/temporal-dev-server';
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
    openSsh: () => Promise.reject(new Error('no SSH in a scrub')),
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
      /gamma\/\S+: DAMAGED: manifest\.json names "\.\.\/\.\.\/\.\.\/etc\/passwd", not an image file name/,
    );
    assert.equal(lines.at(-1), '2 set(s) ok, 3 damaged, 1 unverified (never completed)');
  });

  it('exits 0 only when no set of the VMs asked for is damaged, and refuses a hostile VM name', () => {
    const cli = (...args: string[]) =>
      spawnSync(
        process.execPath,
        [join(PROJECT_ROOT, 'dist', 'scripts', 'cli.js'), '--config', configFile, 'store', 'verify', ...args],
        { encoding: 'utf8' },
      );
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
});
