import type { HeldDownRecord } from '../../../domain/vm-contracts';
import { markRunning, type Cycle } from '../cycle';
import { startAgain } from './start';

/**
 * A VM an earlier run stopped and is gone (terminated, crashed): its downtime counts from that stop. It is
 * imaged now if its budget allows, else started first and backed up as any running VM.
 */
export async function takeOverLeftOff(c: Cycle, heldDown: HeldDownRecord): Promise<void> {
  c.result.heldDownBy = heldDown.owner.workflowId;
  c.downtime.stopRequested(Date.parse(heldDown.since));
  c.downtime.off = true;
  c.undo.push('restart', 'start the VM an earlier run left off', () => startAgain(c, 0));
  if (!c.downtime.spent()) return;
  await c.step.run('starting-left-off', () => startAgain(c, 0));
  c.undo.drop('restart');
  markRunning(c);
  c.downtime.off = false;
}
