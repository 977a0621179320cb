import { VmRecords, type HeldDownRecord } from '../../adapters/hypervisor/vm-records';
import { withSsh } from '../../adapters/ssh/ssh-session';
import type { Config } from '../../config/schema';
import { formatDuration } from '../../domain/format';

/** VMs a weekly run stopped and that are not running again yet, from the records on the hypervisor. */
export async function heldDownVms(config: Config): Promise<HeldDownRecord[]> {
  const hv = config.hypervisor;
  if (!hv) return [];
  const host = config.hosts[hv.host];
  if (!host) throw new Error(`hypervisor.host names no entry of hosts: ${hv.host}`);
  return withSsh(hv.host, host, (ssh) => new VmRecords(ssh, hv.imageArea).listHeldDown());
}

export function describeHeldDown(record: HeldDownRecord, now = new Date()): string {
  const down = now.getTime() - Date.parse(record.since);
  return `${JSON.stringify(record.vm)} held down for ${formatDuration(down)} by ${record.owner.workflowId} (budget ${record.budgetSeconds} s)`;
}
