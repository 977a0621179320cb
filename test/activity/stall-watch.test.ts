import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { whileHeartbeating } from '../../activities/heartbeat';
import { runActivity } from '../helpers/sandbox';

/** A step that never moves: stopped after a second, given `graceSeconds` to unwind. */
const stallAfterOneSecond = (graceSeconds: number) => ({
  seconds: 1,
  progress: () => 0,
  stalled: () => new Error('stalled'),
  graceSeconds,
});

describe('stall watch: a stopped step is waited for before the activity fails (real activity context)', () => {
  it('fails only once the stopped step has unwound (its writes and clean-up done)', async () => {
    const events: string[] = [];
    const step = async (signal: AbortSignal) => {
      await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
      await sleep(1500); // a writer thread finishing its file, a staging folder being removed
      events.push('unwound');
      throw new Error('cut off');
    };
    await runActivity(() =>
      whileHeartbeating(() => ({}), step, stallAfterOneSecond(10)).catch((err: Error) => {
        events.push(`failed: ${err.message}`);
      }),
    );
    assert.deepEqual(events, ['unwound', 'failed: stalled']);
  });

  it('fails a step that does not stop within the grace anyway, once the grace is over', async () => {
    const started = Date.now();
    const never = () => new Promise<never>(() => undefined);
    await assert.rejects(
      runActivity(() => whileHeartbeating(() => ({}), never, stallAfterOneSecond(2))),
      /^Error: stalled$/,
    );
    const seconds = (Date.now() - started) / 1000;
    assert.ok(seconds >= 2.9 && seconds < 6, `failed after ${seconds} s (stall 1-2 s, then 2 s of grace)`);
  });
});
