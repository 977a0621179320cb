import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hostRunId, planHosts } from '../../workflows/weekly-by-hypervisor';

const two = [
  { name: 'hv1', taskQueue: 'q@hv1' },
  { name: 'hv2', taskQueue: 'q@hv2' },
];

describe('which hypervisor runs which VMs', () => {
  it('every hypervisor, its own list, when no VM is named', () => {
    const { inputs, refused } = planHosts(two, 'S', undefined);
    assert.deepEqual(inputs, [
      { hypervisor: 'hv1', taskQueue: 'q@hv1', stamp: 'S' },
      { hypervisor: 'hv2', taskQueue: 'q@hv2', stamp: 'S' },
    ]);
    assert.deepEqual(refused, []);
  });

  it('hypervisor/vm goes to that one; a plain name is looked for on each; an unknown hypervisor is refused', () => {
    const { inputs, refused } = planHosts(two, 'S', ['hv2/db', 'web', 'hv9/x']);
    assert.deepEqual(inputs, [
      { hypervisor: 'hv1', taskQueue: 'q@hv1', stamp: 'S', vms: ['web'], onlyExisting: true },
      { hypervisor: 'hv2', taskQueue: 'q@hv2', stamp: 'S', vms: ['db'] },
      { hypervisor: 'hv2', taskQueue: 'q@hv2', stamp: 'S', vms: ['web'], onlyExisting: true },
    ]);
    assert.equal(refused.length, 1);
    assert.equal(refused[0]!.vm, 'x');
    assert.match(refused[0]!.reason!, /no hypervisor "hv9" in config/);
  });

  it('with one hypervisor a plain name is its VM (a missing one is reported there)', () => {
    const { inputs } = planHosts([two[0]!], 'S', ['db', 'hv1/web']);
    assert.deepEqual(inputs, [{ hypervisor: 'hv1', taskQueue: 'q@hv1', stamp: 'S', vms: ['db', 'web'] }]);
  });

  it('names child runs by week, hypervisor and stamp', () => {
    assert.equal(hostRunId('2026-W49', 'hv1', '20261207T131800Z'), 'vms-2026-W49-hv1-20261207T131800Z');
    assert.equal(hostRunId('2026-W49', 'hv1', 'S', 1), 'vms-2026-W49-hv1-S-1');
  });
});
