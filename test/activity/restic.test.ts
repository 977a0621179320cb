import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { AdapterError } from '../../adapters/adapter-error';
import { Restic } from '../../adapters/restic/restic';
import { isResticFailure } from '../../adapters/restic/restic-errors';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

describe('the restic adapter (real restic 0.14)', () => {
  let root: string;
  let passwordFile: string;
  let n = 0;
  const data = randomBytes(4 << 20);

  /** A fresh repository of its own for a test. */
  async function freshRepo(): Promise<{ restic: Restic; repository: string }> {
    const repository = join(root, `repo-${++n}`);
    const restic = new Restic({ repository, passwordFile });
    await restic.init();
    return { restic, repository };
  }

  before(() => {
    root = mkdtempSync(join(tmpdir(), 'cluster-backup-restic-'));
    passwordFile = join(root, 'password');
    writeFileSync(passwordFile, 'correct horse battery staple\n', { mode: 0o600 });
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('initialises a repository, and a second init finds it and is fine', async () => {
    const restic = new Restic({ repository: join(root, 'twice'), passwordFile });
    assert.equal(await restic.init(), 'created');
    assert.equal(await restic.init(), 'existed');
    assert.deepEqual(await restic.snapshots(), []);
  });

  it('refuses a password file others may read, naming the file', async () => {
    const exposed = join(root, 'exposed-password');
    writeFileSync(exposed, 'secret-value-123\n');
    chmodSync(exposed, 0o644);
    const restic = new Restic({ repository: join(root, 'exposed'), passwordFile: exposed });
    await assert.rejects(restic.init(), (error: unknown) => {
      assert.ok(error instanceof AdapterError);
      assert.equal(error.kind, 'auth');
      assert.match(error.message, new RegExp(exposed));
      assert.doesNotMatch(error.message, /secret-value-123/);
      return true;
    });
  });

  it('stores a stream, deduplicates the same bytes again, and dumps them back identical', async () => {
    const { restic } = await freshRepo();
    const progress: number[] = [];
    const first = await restic.backupStdin({
      stdin: Readable.from([data]),
      filename: 'disk.raw',
      tags: ['vm:alpha', 'day:2026-12-07'],
      onProgress: (bytes) => progress.push(bytes),
    });
    assert.match(first.snapshotId, /^[0-9a-f]{8,64}$/);
    assert.equal(first.totalBytesProcessed, data.length);
    assert.ok(first.dataAdded > data.length / 2, `first dataAdded ${first.dataAdded}`);
    const second = await restic.backupStdin({ stdin: Readable.from([data]), filename: 'disk.raw', tags: ['vm:alpha'] });
    assert.notEqual(second.snapshotId, first.snapshotId);
    assert.ok(second.dataAdded < 64 * 1024, `second dataAdded ${second.dataAdded} should be tiny (dedup)`);

    const back = await readAll(restic.dump(first.snapshotId, 'disk.raw'));
    assert.equal(sha256(back), sha256(data));

    await restic.backupStdin({ stdin: Readable.from([randomBytes(1000)]), filename: 'other.raw', tags: ['vm:beta'] });
    const alpha = await restic.snapshots({ tags: ['vm:alpha'] });
    assert.equal(alpha.length, 2);
    assert.ok(alpha.every((s) => s.tags.includes('vm:alpha') && s.paths.includes('/disk.raw')));
    const day = await restic.snapshots({ tags: ['vm:alpha', 'day:2026-12-07'] });
    assert.deepEqual(
      day.map((s) => s.short_id),
      [first.snapshotId.slice(0, 8)],
    );
    assert.equal((await restic.snapshots()).length, 3);

    const raw = await restic.stats('raw-data');
    const restore = await restic.stats('restore-size');
    assert.ok(raw.total_size > 0 && restore.total_size >= data.length);
  });

  it('a dump of a file the snapshot does not hold errors', async () => {
    const { restic } = await freshRepo();
    const { snapshotId } = await restic.backupStdin({
      stdin: Readable.from([Buffer.from('x')]),
      filename: 'a',
      tags: ['t'],
    });
    await assert.rejects(readAll(restic.dump(snapshotId, 'missing')), AdapterError);
  });

  it('a producer stream that fails midway leaves no snapshot', async () => {
    const { restic } = await freshRepo();
    let sent = 0;
    const failing = new Readable({
      read() {
        if (sent >= 2 << 20) {
          setTimeout(() => this.destroy(new Error('disk read failed')), 200);
          return;
        }
        sent += 256 << 10;
        this.push(randomBytes(256 << 10));
      },
    });
    await assert.rejects(
      restic.backupStdin({ stdin: failing, filename: 'disk.raw', tags: ['t'] }),
      (error: unknown) => {
        assert.ok(error instanceof AdapterError);
        assert.match(error.message, /disk read failed/);
        return true;
      },
    );
    assert.deepEqual(await restic.snapshots(), []);
    await restic.unlockStale();
  });

  it('refuses unsafe tags and filenames', async () => {
    const restic = new Restic({ repository: join(root, 'unused'), passwordFile });
    for (const tags of [['a,b'], ['-x'], ['a\nb']])
      await assert.rejects(restic.backupStdin({ stdin: Readable.from([]), filename: 'f', tags }), { kind: 'refused' });
    await assert.rejects(restic.backupStdin({ stdin: Readable.from([]), filename: '--help', tags: [] }), {
      kind: 'refused',
    });
  });

  it('a wrong password is the wrong-password kind, without the password in the message', async () => {
    const { repository } = await freshRepo();
    const wrong = join(root, 'wrong-password');
    writeFileSync(wrong, 'not-the-password-42\n', { mode: 0o600 });
    const restic = new Restic({ repository, passwordFile: wrong });
    await assert.rejects(restic.snapshots(), (error: unknown) => {
      assert.ok(isResticFailure(error, 'wrong-password'));
      assert.equal((error as AdapterError).kind, 'auth');
      assert.doesNotMatch((error as Error).message, /not-the-password-42/);
      return true;
    });
    await assert.rejects(restic.init(), (error: unknown) => isResticFailure(error, 'wrong-password'));
  });

  it('a repository that is not there is the repository-missing kind', async () => {
    const restic = new Restic({ repository: join(root, 'nowhere'), passwordFile });
    await assert.rejects(restic.snapshots(), (error: unknown) => isResticFailure(error, 'no-repository'));
  });

  it('check reads the data and finds a corrupted pack file', async () => {
    const { restic, repository } = await freshRepo();
    await restic.backupStdin({ stdin: Readable.from([randomBytes(1 << 20)]), filename: 'disk.raw', tags: ['t'] });
    assert.equal((await restic.check({ readDataSubset: '1/1' })).ok, true);
    const packs = filesUnder(join(repository, 'data'));
    assert.ok(packs.length > 0);
    const pack = packs.sort((a, b) => statSync(b).size - statSync(a).size)[0]!;
    chmodSync(pack, 0o600);
    const file = await open(pack, 'r+');
    await file.write(Buffer.alloc(64, 0x55), 0, 64, 100);
    await file.close();
    const result = await restic.check({ readDataSubset: '1/1' });
    assert.equal(result.ok, false);
    const name = pack.split('/').pop()!;
    assert.ok(
      result.damagedPacks.includes(name),
      `${result.damagedPacks.join(' ')} should name ${name}:\n${result.output}`,
    );
  });

  it('forget with keepLast 1 removes the older snapshot', async () => {
    const { restic } = await freshRepo();
    const older = await restic.backupStdin({
      stdin: Readable.from([randomBytes(1000)]),
      filename: 'disk.raw',
      tags: ['vm:a'],
    });
    const newer = await restic.backupStdin({
      stdin: Readable.from([randomBytes(1000)]),
      filename: 'disk.raw',
      tags: ['vm:a'],
    });
    const dry = await restic.forget({ tags: ['vm:a'], keepLast: 1, dryRun: true });
    assert.equal(dry[0]?.remove?.[0]?.short_id, older.snapshotId.slice(0, 8));
    assert.equal((await restic.snapshots()).length, 2);
    const groups = await restic.forget({ tags: ['vm:a'], keepLast: 1, prune: true });
    assert.deepEqual(
      groups.flatMap((g) => g.keep ?? []).map((s) => s.short_id),
      [newer.snapshotId.slice(0, 8)],
    );
    assert.deepEqual(
      (await restic.snapshots()).map((s) => s.short_id),
      [newer.snapshotId.slice(0, 8)],
    );
    await restic.prune();
    assert.equal((await restic.check()).ok, true);
  });
});
