import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, statfsSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createStoreActivities } from '../../activities/store';
import { createServices } from '../../activities/services';
import { LocalImageSets } from '../../adapters/image-sets/local-image-sets';
import { initStoreRoot } from '../../adapters/local/store-root';
import { parseConfig } from '../../config/load';
import { runActivity } from '../helpers/sandbox';

const TEN_GIB = 10 * 1024 ** 3;
const OLD = '20261108T050000Z';

describe('space admission counts what image sets occupy, not their apparent size', () => {
  const root = mkdtempSync(join(tmpdir(), 'cluster-backup-sparse-'));
  const storeRoot = join(root, 'store');

  before(async () => {
    await initStoreRoot(storeRoot);
    // Last week's set: a 10 GiB raw image with 1 MiB of data, as the pull stores it (zero blocks as holes).
    const set = join(storeRoot, 'db', OLD);
    mkdirSync(set, { recursive: true });
    const image = join(set, 'vda.raw');
    writeFileSync(image, Buffer.alloc(1 << 20, 7));
    truncateSync(image, TEN_GIB);
    writeFileSync(join(set, 'manifest.json'), '{"images":[]}');
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('lists a sparse set at its allocated size, beside its apparent size', async () => {
    const [set] = await new LocalImageSets(storeRoot).listSets('db');
    assert.equal(set!.bytes, TEN_GIB + '{"images":[]}'.length);
    assert.ok(set!.allocatedBytes < 4 << 20, `allocated ${set!.allocatedBytes}`);
  });

  it('admits the next set when the allocated size fits, even if the apparent size never could', async () => {
    const config = parseConfig(
      {
        hosts: { hv: { host: '127.0.0.1', user: 'backup', privateKeyFile: '/k', knownHostsFile: '/kh' } },
        hypervisor: { host: 'hv', imageArea: '/img' },
        // Free space minus a little: 10 GiB of apparent size would not fit, what the set occupies does.
        store: { root: storeRoot, spaceMarginBytes: 0, retention: { keepLast: 1 } },
      },
      'test',
      root,
    );
    const free = statfsSync(storeRoot).bavail * statfsSync(storeRoot).bsize;
    const { storePreflight } = createStoreActivities({
      config,
      services: createServices({ config, openSsh: () => Promise.reject(new Error('no SSH')) }),
    });
    const room = await runActivity(storePreflight, 'db', '20261115T050000Z', 1 << 20);
    assert.equal(room.ok, true, JSON.stringify(room));
    assert.deepEqual(room.deleted, [], 'nothing deleted chasing space the sparse set never took');
    assert.ok(room.previousBytes! < 4 << 20, 'last week`s size is what it occupies');
    assert.ok(TEN_GIB > free || room.requiredBytes < TEN_GIB, 'admission did not ask for the apparent 10 GiB');
  });
});
