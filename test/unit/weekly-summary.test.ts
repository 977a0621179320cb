import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { imageStamp, inRequestOrder, isoWeekLabel, type VmResult } from '../../domain/weekly-summary';
import { vmResult } from '../helpers/vm-result';

describe('weekly labels', () => {
  it('names ISO weeks, including the ones that straddle a year', () => {
    assert.equal(isoWeekLabel('2026-11-27'), '2026-W48');
    assert.equal(isoWeekLabel('2026-11-29'), '2026-W48'); // Sunday ends the ISO week
    assert.equal(isoWeekLabel('2026-11-30'), '2026-W49');
    assert.equal(isoWeekLabel('2021-01-03'), '2020-W53');
    assert.equal(isoWeekLabel('2024-12-30'), '2025-W01');
    assert.equal(isoWeekLabel('2026-01-01'), '2026-W01');
  });
  it('stamps image sets sortably', () => {
    assert.equal(imageStamp(new Date('2026-11-29T05:00:07.123Z')), '20261129T050007Z');
  });
});

describe('the order of a run`s VMs', () => {
  const vm = (name: string, hypervisor?: string): VmResult => vmResult(name, hypervisor ? { hypervisor } : {});
  const names = (results: VmResult[]) => results.map((r) => (r.hypervisor ? `${r.hypervisor}/${r.vm}` : r.vm));

  it('is the order the operator named them in, plain or hypervisor/vm, not the order the cycles ended', () => {
    const ended = [vm('missing', 'a'), vm('web', 'b'), vm('db', 'a')];
    assert.deepEqual(names(inRequestOrder(ended, ['db', 'b/web', 'missing'], ['a', 'b'])), [
      'a/db',
      'b/web',
      'a/missing',
    ]);
  });

  it('is the config`s order of hypervisors when none were named, each host`s VMs as they came', () => {
    const ended = [vm('x', 'b'), vm('y', 'a'), vm('z', 'b'), vm('w', 'a')];
    assert.deepEqual(names(inRequestOrder(ended, undefined, ['a', 'b'])), ['a/y', 'a/w', 'b/x', 'b/z']);
    assert.deepEqual(names(inRequestOrder([vm('q'), vm('p')])), ['q', 'p']);
  });
});
