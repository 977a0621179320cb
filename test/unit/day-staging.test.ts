import assert from 'node:assert/strict';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
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
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('keeps the partial files a retry resumes, under hashed names outside the day, and drops the others', async () => {
    const root = mkdtempSync(join(tmpdir(), 'cluster-backup-staging-'));
    try {
      const day = join(root, '2026', '001');
      mkdirSync(day, { recursive: true });
      const first = await DayStaging.prepare(root, '2026-001', day, 1, OWNER_ONLY);
      const resumed = first.resumePathFor('big.dat');
      const dropped = first.resumePathFor('gone.dat');
      assert.ok(resumed.startsWith(join(root, '.cluster-backup', 'staging', '2026-001', 'resume') + '/'));
      assert.match(resumed, /\/[0-9a-f]{64}$/);
      assert.notEqual(first.resumePathFor('big.dat.cluster-backup-partial'), resumed);
      writeFileSync(resumed, 'half of big.dat');
      writeFileSync(dropped, 'half of a file no retry resumes');
      writeFileSync(first.pathFor(0, 3), 'a streamed file');

      const second = await DayStaging.prepare(root, '2026-001', day, 1, OWNER_ONLY, ['big.dat']);
      assert.equal(second.resumePathFor('big.dat'), resumed, 'the same name in every attempt');
      assert.equal(readFileSync(resumed, 'utf8'), 'half of big.dat');
      assert.equal(existsSync(dropped), false);
      assert.equal(existsSync(first.pathFor(0, 3)), false);
      await second.remove(['big.dat']);
      assert.equal(readFileSync(resumed, 'utf8'), 'half of big.dat');
      await second.remove();
      assert.equal(existsSync(join(root, '.cluster-backup', 'staging', '2026-001')), false);
      assert.deepEqual(readdirSync(day), [], 'nothing was ever written into the day folder');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('stages beside the day folder when the root is on another file system (a rename could not move files across)', async (t) => {
    const other = '/dev/shm';
    if (!existsSync(other) || statSync(other).dev === statSync(tmpdir()).dev) return t.skip('no second file system');
    const root = mkdtempSync(join(tmpdir(), 'cluster-backup-staging-'));
    const year = mkdtempSync(join(other, 'cluster-backup-year-'));
    const day = join(year, '001');
    mkdirSync(day);
    try {
      const staging = await DayStaging.prepare(root, '2026-001', day, 2, OWNER_ONLY);
      assert.equal(existsSync(join(root, '.cluster-backup', 'staging', '2026-001')), false);
      assert.equal(staging.pathFor(1, 4), join(year, '.cluster-backup-staging', '2026-001', '1', '4'));
      await staging.remove();
      assert.deepEqual(readdirSync(day), []);
    } finally {
      rmSync(root, { recursive: true, force: true });
      rmSync(year, { recursive: true, force: true });
    }
  });

  it('refuses a day label that could name another folder', async () => {
    await assert.rejects(
      DayStaging.prepare('/nonexistent', '../2026-001', '/nonexistent', 1, OWNER_ONLY),
      /bad day label/,
    );
  });
});
