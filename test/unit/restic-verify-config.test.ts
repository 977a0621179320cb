import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { subsetOfPack } from '../../adapters/restic/repository-packs';
import { afterSubset, freshState } from '../../adapters/restic/verify-state';
import { parseConfig } from '../../config/load';

describe('store verify on restic: config and rotation rules', () => {
  it('refuses more than 256 subsets (restic 0.14), naming the field', () => {
    const raw = {
      hosts: { hv: { host: '127.0.0.1', user: 'b', privateKeyFile: '/k', knownHostsFile: '/kh' } },
      hypervisor: { host: 'hv', imageArea: '/img' },
      store: { root: '/s', engine: 'restic', restic: { passwordFile: '/p', verifySubsets: 300 } },
    };
    assert.throws(() => parseConfig(raw, 't', '/tmp'), /store\.restic\.verifySubsets: restic 0\.14 .* at most 256/);
  });

  it('a pack is in the subset of its first byte modulo N', () => {
    assert.equal(subsetOfPack('00' + 'a'.repeat(62), 52), 1);
    assert.equal(subsetOfPack('ff' + 'a'.repeat(62), 52), (255 % 52) + 1);
    assert.equal(subsetOfPack('d9' + 'a'.repeat(62), 4), 2);
  });

  it('subset N wraps to 1 and subset 1 starts a new period', () => {
    let state = freshState(3);
    const at = (m: number) => new Date(Date.UTC(2026, 11, 1, 0, m));
    for (const n of [1, 2, 3]) state = afterSubset(state, n, at(n), true, []);
    assert.equal(state.next, 1);
    assert.deepEqual(
      state.read.map((r) => r.subset),
      [1, 2, 3],
    );
    state = afterSubset(state, 1, at(9), true, []);
    assert.equal(state.next, 2);
    assert.equal(state.periodStartedAt, at(9).toISOString());
    assert.deepEqual(
      state.read.map((r) => r.subset),
      [1],
    );
  });
});
