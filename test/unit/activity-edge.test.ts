import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { atActivityEdge, typedFailure } from '../../activities/failures';
import { AdapterError } from '../../adapters/adapter-error';

describe('the activity edge: adapters throw plain errors with a kind, activities typed failures', () => {
  it('a transient adapter error becomes a retryable failure of its type', () => {
    const failure = typedFailure(new AdapterError('SMTP said 421', 'transient', 'MailDeliveryError'));
    assert.ok(failure instanceof ApplicationFailure);
    assert.equal(failure.type, 'MailDeliveryError');
    assert.equal(failure.nonRetryable, false);
    assert.equal(failure.message, 'SMTP said 421');
  });

  it('every other kind becomes a non-retryable one', () => {
    for (const kind of ['permanent', 'auth', 'refused'] as const) {
      const failure = typedFailure(new AdapterError('no', kind, 'MailAuthError'));
      assert.ok(failure instanceof ApplicationFailure && failure.nonRetryable, kind);
    }
  });

  it('leaves other errors as they are', () => {
    const plain = new Error('plain');
    assert.equal(typedFailure(plain), plain);
    const typed = ApplicationFailure.nonRetryable('typed', 'DamagedSet');
    assert.equal(typedFailure(typed), typed);
  });

  it('wraps every activity, keeping its name and result, and maps what it throws', async () => {
    const activities = atActivityEdge({
      ok: async (n: number) => n + 1,
      fails: async () => {
        throw new AdapterError('gone for good', 'permanent', 'MailDeliveryError');
      },
    });
    assert.deepEqual(Object.keys(activities), ['ok', 'fails']);
    assert.equal(await activities.ok(1), 2);
    await assert.rejects(
      activities.fails(),
      (err: unknown) => err instanceof ApplicationFailure && err.type === 'MailDeliveryError' && err.nonRetryable,
    );
  });
});
