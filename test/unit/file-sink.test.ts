import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { BackgroundFileSink, InlineFileSink, type FileSink } from '../../adapters/transfer/file-sink';

const dir = mkdtempSync(join(tmpdir(), 'cluster-backup-sink-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const sinks = {
  inline: (file: Awaited<ReturnType<typeof open>>) => new InlineFileSink(file, true),
  background: (file: Awaited<ReturnType<typeof open>>) => new BackgroundFileSink(file, true),
};

for (const [name, make] of Object.entries(sinks)) {
  describe(`${name} file sink`, () => {
    it('writes pieces at their offsets after a kept prefix, and hashes prefix and pieces in order', async () => {
      const content = randomBytes(3 << 20);
      const path = join(dir, `${name}.bin`);
      const prefix = 123_457;
      writeFileSync(path, content.subarray(0, prefix));
      const file = await open(path, 'r+');
      const sink: FileSink = make(file);
      let sha256: string | undefined;
      try {
        await sink.seed(path, prefix);
        const shared = Buffer.from('tail'); // lives in Node's shared small-buffer pool
        const whole = Buffer.from(content.subarray(prefix, prefix + (1 << 20))); // a buffer of its own
        const slice = content.subarray(prefix + (1 << 20), content.length - 4);
        const kept = Buffer.from(slice);
        content.write('tail', content.length - 4);
        const reusable = await sink.write([whole, slice], prefix);
        await sink.write([shared], content.length - 4);
        assert.ok(
          reusable.some((b) => b.length === 1 << 20),
          'the whole buffer comes back for reuse',
        );
        assert.deepEqual(slice, kept, 'a slice of a larger buffer is copied, never taken away');
        assert.equal(shared.toString(), 'tail');
        sha256 = await sink.digest();
      } finally {
        await sink.close();
        await file.close();
      }
      assert.ok(readFileSync(path).equals(content));
      assert.equal(sha256, createHash('sha256').update(content).digest('hex'));
    });

    it('stores blocks of zeros as holes: same content, less disk', async () => {
      const content = Buffer.alloc(8 << 20);
      randomBytes(1 << 20).copy(content, 3 << 20);
      const path = join(dir, `${name}-sparse.bin`);
      const file = await open(path, 'w');
      const sink = make(file);
      let sha256: string | undefined;
      try {
        // Pieces of their own, as a download hands them over; the last one is all zeros.
        const pieces = Array.from({ length: 8 }, (_, i) => Buffer.from(content.subarray(i << 20, (i + 1) << 20)));
        await sink.write(pieces.slice(0, 5), 0);
        await sink.write(pieces.slice(5), 5 << 20);
        sha256 = await sink.digest();
      } finally {
        await sink.close();
        await file.close();
      }
      assert.equal(statSync(path).size, content.length, 'a file ending in zeros still has its full length');
      assert.ok(readFileSync(path).equals(content));
      assert.equal(sha256, createHash('sha256').update(content).digest('hex'), 'zeros are hashed all the same');
      assert.ok(
        statSync(path).blocks * 512 < 2 << 20,
        `${statSync(path).blocks * 512} bytes on disk for 1 MiB of data`,
      );
    });

    it('rejects with the system error code when a write fails', async () => {
      const path = join(dir, `${name}-readonly.bin`);
      writeFileSync(path, '');
      const file = await open(path, 'r'); // writes fail with EBADF
      const sink = make(file);
      try {
        await assert.rejects(sink.write([Buffer.alloc(1 << 16)], 0), { code: 'EBADF' });
      } finally {
        await sink.close();
        await file.close();
      }
    });
  });
}
