import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { imageStamp, isoWeekLabel } from '../../domain/weekly-summary';

describe('weekly labels', () => {
  it('names ISO weeks, including the ones that straddle a year', () => {
    assert.equal(isoWeekLabel('2026-11-27'), '2026-W48');
    assert.equal(isoWeekLabel('2026-11-29'), '2026-W48'); // Sunday ends the ISO week
    assert.equal(isoWeekLabel('2026-11-30'), '2026-W49');
    assert.equal(isoWeekLabel('2021-01-03'), '2020-W53');
    assert.equal(isoWeekLabel('2024-12-30'), '2025-W01');
    assert.equal(isoWeekLabel('2026-01-01'), '2026-W01');
  });
  it('stamps image sets sortably', () => {
    assert.equal(imageStamp(new Date('2026-11-29T05:00:07.123Z')), '20261129T050007Z');
  });
});
