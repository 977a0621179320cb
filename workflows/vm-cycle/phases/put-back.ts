import { markRunning, type Cycle } from '../cycle';

/**
 * On every way out: what is left on the undo stack runs (restart, overlays, partials, lock), each outcome
 * recorded. A restart that failed for good (only a VM that no longer exists) fails the cycle, as does any
 * other undo that failed after an otherwise good cycle.
 */
export const putBack = (c: Cycle) =>
  c.step.run(c.undo.pending('restart') ? 'restarting' : 'cleaning-up', async () => {
    const { result } = c;
    result.compensations = await c.undo.unwind();
    const restart = c.undo.ran('restart');
    if (restart?.ok) markRunning(c);
    if (restart && !restart.ok) {
      result.runningAtEnd = false;
      result.status = 'failed';
      result.reason = `${result.reason ? `${result.reason}; ` : ''}could not restart: ${restart.error}`;
    }
    const othersFailed = result.compensations.filter((run) => !run.ok).length > (restart && !restart.ok ? 1 : 0);
    if (othersFailed && result.status === 'backed-up') result.status = 'failed';
  });
