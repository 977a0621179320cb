import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { offsiteLag, offsiteStatusLines, type SnapshotFacts } from '../../domain/offsite';

const record = (id: string, vm: string, stamp: string, time: string): SnapshotFacts => ({
  id,
  time,
  tags: [`vm=${vm}`, `set=${stamp}`, 'record'],
});
const day = (id: string, label: string, time: string): SnapshotFacts => ({
  id,
  time,
  tags: [`day=${label}`, 'kind=supim-day'],
});
const copyOf = (s: SnapshotFacts, id: string): SnapshotFacts => ({ ...s, id, original: s.id });

describe('how far an off-site repository is behind the primary', () => {
  const now = new Date('2026-12-08T12:00:00Z');
  const primary = [
    record('p1', 'db', '20261129T050000Z', '2026-11-29T05:30:00Z'),
    record('p2', 'db', '20261206T050000Z', '2026-12-06T05:30:00Z'),
    record('p3', 'web', '20261206T050000Z', '2026-12-06T06:00:00Z'),
    day('d1', '2026-340', '2026-12-06T03:10:00Z'),
    day('d2', '2026-341', '2026-12-07T03:10:00Z'),
    day('d3', '2026-342', '2026-12-08T03:10:00Z'),
  ];

  it('counts what is newer than the newest copy there and not copied, and how long the oldest has waited', () => {
    // Copied: db's first set and the first day; web never; an old day forgotten there by its retention.
    const there = [copyOf(primary[0]!, 'o1'), copyOf(primary[3]!, 'o2')];
    const lag = offsiteLag(primary, there, now);
    assert.deepEqual(lag.behindSets, ['db/20261206T050000Z', 'web/20261206T050000Z']);
    assert.deepEqual(lag.behindDays, ['2026-341', '2026-342']);
    assert.equal(lag.lagHours, 54.5); // db's second set, recorded 2026-12-06 05:30
    assert.deepEqual(lag.newestSets, { db: '20261129T050000Z' });
    assert.equal(lag.newestDay, '2026-340');
    const lastCheck = { at: '2026-12-06T03:20:00.000Z', what: 'structure + subset 3/12', ok: true, damagedPacks: [] };
    const lines = offsiteStatusLines([
      {
        repository: 'far',
        newest: '2026-12-06T03:10:00.000Z',
        ageHours: 56.8,
        maxAgeHours: 192,
        stale: false,
        lag,
        lastCheck,
      },
    ]);
    assert.equal(lines[3], '  last check there: 2026-12-06 03:20 UTC, structure + subset 3/12: ok');
    assert.match(lines[1]!, /behind the primary: 2 set\(s\), 2 day\(s\), the oldest waiting 54\.5 h/);
    assert.match(lines[2]!, /newest there: db 20261129T050000Z, day 2026-340/);
  });

  it('is nothing once everything is copied, and older sets the off-site retention forgot do not count', () => {
    const there = primary.slice(1).map((s, i) => copyOf(s, `o${i}`)); // p1 forgotten there
    const lag = offsiteLag(primary, there, now);
    assert.deepEqual([lag.behindSets, lag.behindDays, lag.lagHours], [[], [], 0]);
    assert.deepEqual(lag.newestSets, { db: '20261206T050000Z', web: '20261206T050000Z' });
    assert.match(
      offsiteStatusLines([
        { repository: 'far', maxAgeHours: 1, stale: false, newest: now.toISOString(), ageHours: 0, lag },
      ])[1]!,
      /behind the primary: nothing/,
    );
  });
});
