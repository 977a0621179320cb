import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { newManifest, type ManifestImage } from '../../adapters/image-sets/manifest';
import { ResticImageSets } from '../../adapters/image-sets/restic-image-sets';
import {
  resticImageFrom,
  resticSetForRestore,
  ResticSetProblem,
  resticVms,
} from '../../adapters/image-sets/restic-restore-source';
import { Restic } from '../../adapters/restic/restic';
import { storeOneDiskSet } from '../helpers/restic-set';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const VM = 'cbtest-source';
const STAMP = '20261207T010203Z';

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** The restore's view of a restic set (real restic): the set checked against its snapshots, a disk read from an offset. */
describe('restic sets for a restore (real restic)', () => {
  let root: string;
  let sets: ResticImageSets;
  let image: ManifestImage;
  const data = randomBytes((3 << 20) + 123);

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'cluster-backup-restic-source-'));
    const passwordFile = join(root, 'password');
    writeFileSync(passwordFile, 'correct horse battery staple\n', { mode: 0o600 });
    const restic = new Restic({ repository: join(root, 'repo'), passwordFile });
    await restic.init();
    sets = new ResticImageSets(restic);
    image = await storeOneDiskSet(sets, { vm: VM, stamp: STAMP, disk: 'vda', data });
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('finds the newest recorded set and the VMs of the repository', async () => {
    const found = await resticSetForRestore(sets, VM);
    assert.equal(found.stamp, STAMP);
    assert.deepEqual(found.manifest.images, [image]);
    assert.deepEqual(await resticVms(sets), [VM]);
  });

  it('reads a disk whole, and from an offset (a resumed push sends only the rest)', async () => {
    for (const start of [0, 1, (1 << 20) + 7, data.length - 1, data.length]) {
      const got = await readAll(resticImageFrom(sets, VM, image, start));
      assert.equal(got.length, data.length - start, `from ${start}`);
      assert.equal(sha256(got), sha256(data.subarray(start)), `from ${start}`);
    }
  });

  it('a stamp without a record is missing; a record whose disk snapshot is gone or differs is damaged', async () => {
    await assert.rejects(resticSetForRestore(sets, VM, '20990101T000000Z'), (err: ResticSetProblem) => {
      assert.equal(err.kind, 'missing');
      assert.match(err.message, /no verified set 20990101T000000Z .*have: 20261207T010203Z/);
      return true;
    });
    await assert.rejects(resticSetForRestore(sets, 'cbtest-other'), { kind: 'missing' });
    // A record that claims another size than the disk snapshot holds.
    const stamp2 = '20261208T010203Z';
    const stored = await sets.storeDisk({
      vm: VM,
      stamp: stamp2,
      disk: 'vda',
      bytes: 10,
      stdin: Readable.from([data.subarray(0, 10)]),
    });
    const wrong = { ...image, bytes: 11, restic: { snapshot: stored.snapshotId, dataAdded: 0 } };
    await sets.writeManifest(VM, stamp2, newManifest({ vm: VM, stamp: stamp2, images: [wrong] }));
    await assert.rejects(resticSetForRestore(sets, VM, stamp2), (err: ResticSetProblem) => {
      assert.equal(err.kind, 'damaged');
      assert.match(err.message, /holds 10 bytes, the record says 11/);
      return true;
    });
    await sets.restic.forgetSnapshots([image.restic!.snapshot]);
    await assert.rejects(resticSetForRestore(sets, VM, STAMP), (err: ResticSetProblem) => {
      assert.equal(err.kind, 'damaged');
      assert.match(err.message, /vda: snapshot [0-9a-f]{8} is not in the restic repository/);
      return true;
    });
  });
});
