import { VmRecords, type HeldDownRecord } from '../../adapters/hypervisor/vm-records';
import { withSsh } from '../../adapters/ssh/ssh-session';
import type { Config } from '../../config/schema';
import { formatDuration } from '../../domain/format';

/** VMs a weekly run stopped and that are not running again yet, from the records on each hypervisor. */
export async function heldDownVms(config: Config): Promise<(HeldDownRecord & { hypervisor: string })[]> {
  const perHost = await Promise.all(
    config.hypervisors.map(async (hv) => {
      const host = config.hosts[hv.host];
      if (!host) throw new Error(`hypervisors[${hv.name}].host names no entry of hosts: ${hv.host}`);
      const records = await withSsh(hv.host, host, (ssh) => new VmRecords(ssh, hv.imageArea).listHeldDown());
      return records.map((r) => ({ ...r, hypervisor: hv.name }));
    }),
  );
  return perHost.flat();
}

export function describeHeldDown(record: HeldDownRecord & { hypervisor?: string }, now = new Date()): string {
  const down = now.getTime() - Date.parse(record.since);
  const on = record.hypervisor ? ` on ${record.hypervisor}` : '';
  return `${JSON.stringify(record.vm)}${on} held down for ${formatDuration(down)} by ${record.owner.workflowId} (budget ${record.budgetSeconds} s)`;
}
