import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { DayStaging } from '../../adapters/local/day-staging';
import { OWNER_ONLY } from '../../adapters/local/file-mode';

describe('staging folders of a day copy', () => {
  it('clears what an earlier attempt left, gives each lane a folder, and removes them all', async () => {
    const root = mkdtempSync(join(tmpdir(), 'cluster-backup-staging-'));
    try {
      const left = join(root, '.cluster-backup', 'staging', '2026-001', '0');
      mkdirSync(left, { recursive: true });
      writeFileSync(join(left, '7'), 'half a file from a crashed attempt');
      const day = join(root, '2026', '001');
      mkdirSync(day, { recursive: true });
      const staging = await DayStaging.prepare(root, '2026-001', day, 2, OWNER_ONLY);
      assert.ok(staging);
      assert.equal(existsSync(join(left, '7')), false);
      assert.equal(staging.pathFor(1, 12), join(root, '.cluster-backup', 'staging', '2026-001', '1', '12'));
      assert.equal(statSync(join(root, '.cluster-backup', 'staging', '2026-001', '1')).mode & 0o777, 0o700);
      await staging.remove();
      assert.equal(existsSync(join(root, '.cluster-backup', 'staging', '2026-001')), false);
      assert.equal(await DayStaging.prepare(root, '2026-001', day, 0, OWNER_ONLY), undefined);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('is not used when the day is on another file system (a rename could not move files across)', async (t) => {
    const other = '/dev/shm';
    if (!existsSync(other) || statSync(other).dev === statSync(tmpdir()).dev) return t.skip('no second file system');
    const root = mkdtempSync(join(tmpdir(), 'cluster-backup-staging-'));
    const day = mkdtempSync(join(other, 'cluster-backup-day-'));
    try {
      assert.equal(await DayStaging.prepare(root, '2026-001', day, 2, OWNER_ONLY), undefined);
      assert.equal(existsSync(join(root, '.cluster-backup', 'staging', '2026-001')), false);
    } finally {
      rmSync(root, { recursive: true, force: true });
      rmSync(day, { recursive: true, force: true });
    }
  });

  it('refuses a day label that could name another folder', async () => {
    await assert.rejects(
      DayStaging.prepare('/nonexistent', '../2026-001', '/nonexistent', 1, OWNER_ONLY),
      /bad day label/,
    );
  });
});
