import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { dataRuns } from '../../adapters/local/sparse-runs';

const KiB = 1024;
const zeros = (n: number) => Buffer.alloc(n);

/** The bytes a file gets when `runs` are written at their positions, holes reading as zeros. */
function materialise(runs: ReturnType<typeof dataRuns>, from: number, length: number): Buffer {
  const file = Buffer.alloc(length);
  for (const run of runs) {
    assert.equal(run.length, Buffer.concat(run.buffers).length, 'a run knows its length');
    Buffer.concat(run.buffers).copy(file, run.position - from);
  }
  return file;
}

describe('dataRuns', () => {
  it('leaves out 64 KiB blocks of zeros, merges the rest across pieces, and always writes the last byte', () => {
    const a = Buffer.concat([randomBytes(64 * KiB), zeros(128 * KiB), randomBytes(10)]);
    const b = Buffer.concat([randomBytes(5), zeros(64 * KiB)]); // data block, then a 5-byte zero block
    const runs = dataRuns([a, b], 1000);
    assert.deepEqual(
      runs.map((r) => [r.position, r.length]),
      [
        [1000, 64 * KiB],
        [1000 + 192 * KiB, 10 + 64 * KiB], // a's 10-byte tail block and b's first block are contiguous
        [1000 + a.length + b.length - 1, 1], // the file must reach its full length
      ],
    );
    assert.ok(materialise(runs, 1000, a.length + b.length).equals(Buffer.concat([a, b])));
  });

  it('keeps a block with a single non-zero byte', () => {
    const piece = zeros(256 * KiB);
    piece[130 * KiB] = 1;
    const runs = dataRuns([piece], 0);
    assert.deepEqual(
      runs.map((r) => [r.position, r.length]),
      [
        [128 * KiB, 64 * KiB],
        [256 * KiB - 1, 1],
      ],
    );
    assert.ok(materialise(runs, 0, piece.length).equals(piece));
  });

  it('writes data pieces whole, as views of the same memory (no copies)', () => {
    const pieces = [randomBytes(100 * KiB), randomBytes(7)];
    const runs = dataRuns(pieces, 42);
    assert.equal(runs.length, 1);
    assert.equal(runs[0]!.position, 42);
    assert.equal(runs[0]!.buffers[0]!.buffer, pieces[0]!.buffer);
  });

  it('has nothing to write for nothing', () => {
    assert.deepEqual(dataRuns([], 5), []);
    assert.deepEqual(dataRuns([Buffer.alloc(0)], 5), []);
  });
});
