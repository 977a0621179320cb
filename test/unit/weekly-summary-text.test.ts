import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatWeeklySummary } from '../../scripts/commands/run-vms';
import type { VmResult } from '../../domain/weekly-summary';
import { vmResult } from '../helpers/vm-result';

const vm = (name: string, hypervisor: string, over: Partial<VmResult> = {}): VmResult =>
  vmResult(name, { hypervisor, ...over });

describe('run vms output', () => {
  it('names VMs hypervisor/vm once there are several hypervisors, and an unreachable one with why', () => {
    const text = formatWeeklySummary({
      week: '2026-W49',
      stamp: 'S',
      ok: false,
      startedAt: '',
      finishedAt: '',
      hosts: [
        { hypervisor: 'hv1', workflowId: 'vms-2026-W49-hv1-S' },
        { hypervisor: 'hv2', workflowId: 'vms-2026-W49-hv2-S', unreachable: 'hv2: connect ECONNREFUSED' },
      ],
      vms: [vm('db', 'hv1'), vm('web', 'hv2', { status: 'skipped', reason: 'hypervisor unreachable, untouched' })],
    });
    assert.match(text, /hypervisor hv2: unreachable, its VMs untouched: hv2: connect ECONNREFUSED/);
    assert.match(text, /"hv1\/db"\s+backed-up/);
    assert.match(text, /"hv2\/web"\s+skipped/);
  });

  it('keeps plain names with one hypervisor', () => {
    const text = formatWeeklySummary({
      week: '2026-W49',
      stamp: 'S',
      ok: true,
      startedAt: '',
      finishedAt: '',
      hosts: [{ hypervisor: 'hv1', workflowId: 'vms-2026-W49-hv1-S' }],
      vms: [vm('db', 'hv1')],
    });
    assert.match(text, /"db"\s+backed-up/);
  });
});
