import assert from 'node:assert/strict';
import { basename, dirname } from 'node:path';
import { describe, it } from 'node:test';
import { PARTIAL_SUFFIX, partialPathOf } from '../../adapters/local/local-tree';

const bytes = (s: string) => Buffer.byteLength(s);

describe('partial file names', () => {
  it('appends the suffix when the name leaves room for it', () => {
    assert.equal(partialPathOf('/b/2026/001/ne.dat'), `/b/2026/001/ne.dat${PARTIAL_SUFFIX}`);
  });

  it('shortens names near NAME_MAX to fit, uniquely, recognisably, without splitting a character', () => {
    const a = `${'x'.repeat(250)}a.dat`;
    const b = `${'x'.repeat(250)}b.dat`;
    const accented = 'é'.repeat(127); // 254 bytes
    for (const name of [a, b, accented]) {
      const partial = partialPathOf(`/b/${name}`);
      assert.equal(dirname(partial), '/b');
      assert.ok(bytes(basename(partial)) <= 255, `${bytes(basename(partial))} bytes`);
      assert.ok(basename(partial).endsWith(PARTIAL_SUFFIX));
      assert.ok(!basename(partial).includes('\uFFFD'));
      assert.ok(name.startsWith(basename(partial).split('~')[0]!));
    }
    assert.notEqual(partialPathOf(`/b/${a}`), partialPathOf(`/b/${b}`));
    assert.equal(partialPathOf(`/b/${a}`), partialPathOf(`/b/${a}`), 'the same name, the same partial (resume)');
  });
});
