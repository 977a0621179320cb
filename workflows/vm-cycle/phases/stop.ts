import { SkipVm, type Cycle } from '../cycle';
import { startAgain } from './start';

/** Graceful shutdown within the policy's timeout; forced off only where the policy allows it. */
export const stop = (c: Cycle) =>
  c.step.run('stopping', async () => {
    const { vm, policy, downtime } = c;
    // Pushed before the VM is asked to stop; it watches a shutdown that may still be under way, so a guest
    // that powers off a moment after an abort is started again too.
    c.undo.push('restart', 'start the VM again', () => startAgain(c, downtime.off ? 0 : policy.shutdownTimeoutSeconds));
    downtime.stopRequested();
    await c.act.stopping.requestShutdown(vm, policy.maxDowntimeSeconds);
    if ((await c.act.stopping.awaitShutOff(vm, policy.shutdownTimeoutSeconds)) === 'shut-off') {
      downtime.off = true;
      return;
    }
    if (!policy.forceOff) {
      throw new SkipVm(
        `did not shut down within ${policy.shutdownTimeoutSeconds} s (ACPI request ignored?); left running`,
      );
    }
    await c.act.remote.forceOff(vm);
    downtime.off = true;
    c.result.reason = `forced off after ${policy.shutdownTimeoutSeconds} s without shutting down`;
  });
