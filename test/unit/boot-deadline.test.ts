import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MockActivityEnvironment } from '@temporalio/testing';
import { bootTestStartedAtMs } from '../../activities/restore';
import { probeDeadlineMs } from '../../adapters/hypervisor/boot-probe';

describe('the boot test`s time limit', () => {
  it('runs from the first attempt: a retry gets what is left of it, never a new one', async () => {
    const firstScheduled = Date.parse('2026-12-06T10:00:00Z');
    // The third attempt, scheduled 200 s after the first one was.
    const retry = new MockActivityEnvironment({
      attempt: 3,
      scheduledTimestampMs: firstScheduled,
      currentAttemptScheduledTimestampMs: firstScheduled + 200_000,
    });
    const startedAtMs = await retry.run(async () => bootTestStartedAtMs());
    assert.equal(startedAtMs, firstScheduled);
    assert.equal(probeDeadlineMs(startedAtMs, 300), firstScheduled + 300_000, '100 s left for the retry, not 300');
  });
});
