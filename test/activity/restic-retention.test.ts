import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createServices } from '../../activities/services';
import { createStoreActivities } from '../../activities/store';
import { newManifest } from '../../adapters/image-sets/manifest';
import { initStoreRoot } from '../../adapters/local/store-root';
import { parseConfig } from '../../config/load';
import { runIn } from '../helpers/sandbox';

const VM = 'cbtest-retention';
const STAMPS = ['20261122T050000Z', '20261129T050000Z', '20261206T050000Z'];

/**
 * The weekly run's store retention on restic: forget, then prune. A first attempt that forgot and then
 * timed out (prune is silent for minutes on a large repository) leaves a retry that finds nothing to forget.
 */
describe('store retention on a restic repository, retried (real restic 0.14)', () => {
  const root = mkdtempSync(join(tmpdir(), 'cluster-backup-restic-retention-'));
  const storeRoot = join(root, 'store');
  const passwordFile = join(root, 'password');
  const config = parseConfig(
    {
      hosts: { hv: { host: '127.0.0.1', user: 'backup', privateKeyFile: '/k', knownHostsFile: '/kh' } },
      hypervisor: { host: 'hv', imageArea: '/img' },
      store: {
        root: storeRoot,
        engine: 'restic',
        restic: { passwordFile },
        retention: { keepLast: 1, keepWeekly: 0, keepMonthly: 0 },
      },
    },
    'test',
    root,
  );
  const services = createServices({ config, openSsh: () => Promise.reject(new Error('no SSH here')) });
  const { applyStoreRetention } = createStoreActivities({ config, services });
  const sets = services.resticSets();

  before(async () => {
    writeFileSync(passwordFile, 'a restic test password\n', { mode: 0o600 });
    await initStoreRoot(storeRoot);
    await sets.restic.init();
    for (const stamp of STAMPS.slice(0, 2)) {
      const data = randomBytes(2 << 20);
      const stored = await sets.storeDisk({ vm: VM, stamp, disk: 'vda', bytes: data.length, stdin: Readable.from([data]) });
      const image = { disk: 'vda', file: 'vda.raw', format: 'raw' as const, bytes: data.length, virtualSize: data.length };
      await sets.writeManifest(
        VM,
        stamp,
        newManifest({
          vm: VM,
          stamp,
          images: [{ ...image, sha256: '0'.repeat(64), restic: { snapshot: stored.snapshotId, dataAdded: stored.dataAdded } }],
        }),
      );
    }
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('heartbeats what it forgot; a retry reports it and prunes, though nothing is left to forget', async () => {
    const first = new MockActivityEnvironment({ attempt: 1 });
    const beats: unknown[] = [];
    first.on('heartbeat', (d: unknown) => beats.push(d));
    const outcome = await runIn(first, applyStoreRetention, VM, STAMPS[1]!);
    const forgotten = outcome.deleted.filter((d) => d.includes(STAMPS[0]!));
    assert.equal(forgotten.length, 1, JSON.stringify(outcome.deleted));
    assert.match(outcome.deleted.at(-1)!, /^prune returned \d+ bytes$/);
    assert.ok(
      beats.some((b) => JSON.stringify(b) === JSON.stringify({ forgotten })),
      `heartbeats: ${JSON.stringify(beats)}`,
    );
    assert.deepEqual(
      (await sets.listSets(VM)).map((s) => s.stamp),
      [STAMPS[1]],
    );

    // The retry, with the first attempt's heartbeats: the report still names the forgotten set, and it prunes.
    const retry = new MockActivityEnvironment({ attempt: 2, heartbeatDetails: { forgotten } });
    const again = await runIn(retry, applyStoreRetention, VM, STAMPS[1]!);
    assert.deepEqual(again.deleted.slice(0, -1), forgotten);
    assert.match(again.deleted.at(-1)!, /^prune returned \d+ bytes$/);

    // A first attempt with nothing to forget forgets and prunes nothing.
    const quiet = await runIn(new MockActivityEnvironment({ attempt: 1 }), applyStoreRetention, VM, STAMPS[1]!);
    assert.deepEqual(quiet.deleted, []);
  });
});
