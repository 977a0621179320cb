/** The activity option profiles the VM cycle and the restores share (workflows/saga/profiles.ts). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ActivityCancellationType } from '@temporalio/workflow';
import { commonOptions, forever, long, quick } from '../../workflows/saga/profiles';

const common = commonOptions(30, 'VM db');

describe('saga activity profiles', () => {
  it('quick: ten minutes, five tries, the heartbeat timeout in milliseconds and the summary', () => {
    assert.deepEqual(quick(common), {
      heartbeatTimeout: 30_000,
      summary: 'VM db',
      startToCloseTimeout: '10 minutes',
      retry: { initialInterval: '2 seconds', maximumInterval: '30 seconds', maximumAttempts: 5 },
    });
  });

  it('long: its own limit and tries; only a copy that must end before a cancel completes waits for it', () => {
    assert.deepEqual(long(common, 600_000, 3, true), {
      ...common,
      startToCloseTimeout: 600_000,
      cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
      retry: { initialInterval: '5 seconds', maximumInterval: '1 minute', maximumAttempts: 3 },
    });
    assert.equal(long(common, '12 hours', 5).cancellationType, undefined);
    assert.equal(long(common, '12 hours', 5).retry?.maximumAttempts, 5);
  });

  it('forever: no limit on tries', () => {
    const options = forever(common, '30 minutes');
    assert.equal(options.startToCloseTimeout, '30 minutes');
    assert.equal(options.retry?.maximumAttempts, undefined);
    assert.equal(options.retry?.maximumInterval, '1 minute');
  });
});
