import type { VmState } from './driver';

/** libvirt's state words (`virsh domstate`, without the reason in brackets) in the product's terms. */
const STATES: Record<string, VmState['state']> = {
  running: 'running',
  'shut off': 'shut-off',
  paused: 'paused',
  'in shutdown': 'transitional',
  blocked: 'running',
  idle: 'running',
  pmsuspended: 'pmsuspended',
  crashed: 'shut-off',
  dying: 'transitional',
};

/** The one reading of `virsh domstate [--reason]` output: "shut off (shutdown)" is shut-off, its detail kept. */
export function vmStateOf(output: string): VmState {
  const detail = output.trim();
  const word = detail.replace(/\s*\(.*\)$/, '');
  return { state: STATES[word] ?? 'transitional', detail };
}
