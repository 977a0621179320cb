import { markRunning, type Cycle } from '../cycle';

/** Starts the VM, or watches a shutdown that may still be under way and starts it if it goes off. */
export async function startAgain(c: Cycle, watchSeconds: number): Promise<void> {
  if ((await c.act.restart.ensureRunning(c.vm, watchSeconds)).started) c.downtime.off = true;
}

/** The VM is started and confirmed running: its restart is no longer owed. */
export const start = (c: Cycle) =>
  c.step.run('starting', async () => {
    await startAgain(c, 0);
    markRunning(c);
    c.undo.drop('restart');
  });
