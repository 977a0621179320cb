import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { planRetention, type StoredSet } from '../../domain/retention';

/** One verified set every Sunday 05:00 UTC from 2025-06-01 for `weeks` weeks. */
function weeklyHistory(weeks: number): StoredSet[] {
  return Array.from({ length: weeks }, (_, i) => {
    const d = new Date(Date.UTC(2025, 5, 1, 5) + i * 7 * 86_400_000);
    return {
      stamp: d
        .toISOString()
        .replace(/[-:]/g, '')
        .replace(/\.\d+Z$/, 'Z'),
      verified: true,
    };
  });
}

const stamps = (xs: { stamp: string }[]) => xs.map((x) => x.stamp);

describe('retention', () => {
  it('keeps the last N, one per week for W weeks and one per month for M months', () => {
    const history = weeklyHistory(30); // 2025-06-01 .. 2025-12-21
    const plan = planRetention(history, { keepLast: 2, keepWeekly: 4, keepMonthly: 3 });
    assert.deepEqual(stamps(plan.keep), [
      '20251221T050000Z', // newest, last 2, weekly
      '20251214T050000Z', // last 2, weekly
      '20251207T050000Z', // weekly
      '20251130T050000Z', // weekly, monthly 2025-11
      '20251026T050000Z', // monthly 2025-10
    ]);
    assert.equal(plan.delete.length, 25);
    assert.ok(plan.keep[0]!.why.includes('newest verified'));
    assert.ok(plan.keep[4]!.why.includes('monthly 2025-10'));
  });

  it('never deletes the newest verified set, even with a policy of zero', () => {
    const plan = planRetention(weeklyHistory(3), { keepLast: 0, keepWeekly: 0, keepMonthly: 0 });
    assert.deepEqual(stamps(plan.keep), ['20250615T050000Z']);
  });

  it('keeps what is newer than the newest verified set and the run in progress; drops old unverified leftovers', () => {
    const sets: StoredSet[] = [
      { stamp: '20251101T050000Z', verified: false },
      { stamp: '20251102T050000Z', verified: true },
      { stamp: '20251109T050000Z', verified: true },
      { stamp: '20251116T050000Z', verified: false },
      { stamp: '20251123T050000Z', verified: false },
    ];
    const plan = planRetention(sets, { keepLast: 1, keepWeekly: 0, keepMonthly: 0 }, '20251123T050000Z');
    assert.deepEqual(stamps(plan.keep), ['20251123T050000Z', '20251116T050000Z', '20251109T050000Z']);
    assert.deepEqual(plan.delete, [
      { stamp: '20251102T050000Z', why: 'beyond the retention policy' },
      { stamp: '20251101T050000Z', why: 'unverified leftover of an earlier run' },
    ]);
  });

  it('deletes nothing when no set is verified yet', () => {
    const plan = planRetention([{ stamp: '20251101T050000Z', verified: false }], {
      keepLast: 1,
      keepWeekly: 0,
      keepMonthly: 0,
    });
    assert.deepEqual(plan.delete, []);
  });
});
