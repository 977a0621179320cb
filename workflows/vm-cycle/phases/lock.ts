import { SkipVm, type Cycle } from '../cycle';

/** One run per VM (a closed run's lock is taken over); another open run's VM is skipped untouched. */
export const lock = (c: Cycle) =>
  c.step.run('locking', async () => {
    const held = await c.act.remote.lockVm(c.vm);
    if (!held.acquired) throw new SkipVm(held.reason);
    c.undo.push('unlock', 'release the VM lock', () => c.act.remote.unlockVm(c.vm));
  });
