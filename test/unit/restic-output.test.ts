import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { damagedPacks } from '../../adapters/restic/restic';
import { checkSubset, checkTag } from '../../adapters/restic/restic-args';
import { classifyResticStderr, resticError } from '../../adapters/restic/restic-errors';
import { JsonLines, parseSnapshots, type BackupMessage } from '../../adapters/restic/restic-json';

/** What Debian's restic 0.14.0 really prints (captured on this machine). */
const LOCKED =
  'unable to create lock in backend: repository is already locked by PID 13658 on vm by root (UID 0, GID 0)\n' +
  'lock was created at 2026-12-07 09:10:48 (1.411110181s ago)\n' +
  'storage ID c7671dd1\n' +
  'the `unlock` command can be used to remove stale locks\n';
const WRONG_PASSWORD = 'Fatal: wrong password or no key found\n';
const NO_REPOSITORY =
  'Fatal: unable to open config file: stat /tmp/rt/repo/config: no such file or directory\n' +
  'Is there a repository at the following location?\n/tmp/rt/repo\n';
const EMPTY_SNAPSHOT = 'error: read /b: no data read\nFatal: unable to save snapshot: snapshot is empty\n';
const STATUS = '{"message_type":"status","percent_done":0,"total_files":1}';
const SUMMARY =
  '{"message_type":"summary","files_new":1,"files_changed":0,"files_unmodified":0,"dirs_new":0,"dirs_changed":0,' +
  '"dirs_unmodified":0,"data_blobs":1,"tree_blobs":1,"data_added":100283,"total_files_processed":1,' +
  '"total_bytes_processed":100000,"total_duration":0.315743253,"snapshot_id":"ef5e4128"}';
const SNAPSHOTS =
  '[{"time":"2026-12-07T09:08:48.12014632Z","tree":"1c0c50633a709cb1b3ef8ce12762c831af502c2bde78ceb27acdf331992d5bf2",' +
  '"paths":["/a.bin"],"hostname":"vm","username":"root","tags":["x"],' +
  '"id":"ef5e412819c85b2e132e98431f03dcf4dcabe7579e71c1f98fd0ff85b688d406","short_id":"ef5e4128"}]\n';
const CHECK_DAMAGED =
  'read group #1 of 2 data packs (out of total 2 packs in 1 groups)\n' +
  'Pack ID does not match, want 6ba0619768c25f2788ec8d59b0fc16bff1a367043cc0f9f743002f0e4aa66941, ' +
  'got da5ce75c3fe043958386d7cad81dd9070970a4b83f396f7f88a191f48fa0b211\n' +
  'Fatal: repository contains errors\n';

describe('restic stderr classification', () => {
  it('recognises a lock held by another run, and makes it the retryable kind', () => {
    assert.equal(classifyResticStderr(LOCKED), 'locked');
    const error = resticError('prune', 1, null, LOCKED);
    assert.equal(error.kind, 'transient');
    assert.equal(error.retryable, true);
    assert.equal(error.type, 'ResticLockedError');
    assert.match(error.message, /already locked by PID 13658/);
  });

  it('recognises a wrong password (auth) and a missing repository (permanent)', () => {
    assert.equal(classifyResticStderr(WRONG_PASSWORD), 'wrong-password');
    assert.equal(resticError('snapshots', 1, null, WRONG_PASSWORD).kind, 'auth');
    assert.equal(classifyResticStderr(NO_REPOSITORY), 'no-repository');
    assert.equal(resticError('snapshots', 1, null, NO_REPOSITORY).kind, 'permanent');
  });

  it('anything else is other, not retryable, with the stderr tail in the message', () => {
    assert.equal(classifyResticStderr(EMPTY_SNAPSHOT), 'other');
    const error = resticError('backup', 1, null, EMPTY_SNAPSHOT);
    assert.equal(error.retryable, false);
    assert.match(error.message, /restic backup exited with code 1: .*snapshot is empty/s);
    assert.ok(resticError('backup', 1, null, 'x'.repeat(10000)).message.length < 2200);
  });
});

describe('restic JSON output', () => {
  it('splits JSON lines across chunk boundaries and skips text lines', () => {
    const lines = new JsonLines<BackupMessage>();
    const whole = `${STATUS}\nwarning: plain text\n${SUMMARY}`;
    const got: BackupMessage[] = [];
    for (let i = 0; i < whole.length; i += 7) got.push(...lines.feed(whole.slice(i, i + 7)));
    got.push(...lines.end());
    assert.deepEqual(
      got.map((m) => m.message_type),
      ['status', 'summary'],
    );
    const summary = got[1];
    assert.ok(summary?.message_type === 'summary');
    assert.equal(summary.snapshot_id, 'ef5e4128');
    assert.equal(summary.data_added, 100283);
    assert.equal(summary.total_bytes_processed, 100000);
    assert.deepEqual(lines.feed('{"broken": \n'), []);
  });

  it('types the snapshots list (tags and paths never null)', () => {
    const [snapshot] = parseSnapshots(SNAPSHOTS);
    assert.equal(snapshot?.short_id, 'ef5e4128');
    assert.deepEqual(snapshot?.tags, ['x']);
    assert.deepEqual(snapshot?.paths, ['/a.bin']);
    assert.equal(snapshot?.time, '2026-12-07T09:08:48.12014632Z');
    assert.deepEqual(parseSnapshots('[{"id":"a","short_id":"a","time":"t","tags":null,"paths":null}]')[0]?.tags, []);
    assert.deepEqual(parseSnapshots('[]'), []);
  });

  it("names the damaged pack from check's output (the want, not the hash got)", () => {
    assert.deepEqual(damagedPacks(CHECK_DAMAGED), ['6ba0619768c25f2788ec8d59b0fc16bff1a367043cc0f9f743002f0e4aa66941']);
    assert.deepEqual(damagedPacks('no errors were found\n'), []);
    // restic 0.14's hint on a leftover file (a copy killed mid-way) is not damage.
    const leftover = `pack ${'7d'.repeat(32)}: not referenced in any index\n1 additional files were found in the repo\n`;
    assert.deepEqual(damagedPacks(leftover), []);
    assert.deepEqual(damagedPacks(`${leftover}pack ${'ab'.repeat(32)}: does not exist\n`), ['ab'.repeat(32)]);
  });
});

describe('restic argument checks', () => {
  it('refuses commas, leading dashes and newlines in tags; accepts n/N subsets only in range', () => {
    assert.equal(checkTag('vm:alpha'), 'vm:alpha');
    for (const bad of ['a,b', '-a', 'a\nb', '']) assert.throws(() => checkTag(bad), { kind: 'refused' });
    assert.equal(checkSubset('1/1'), '1/1');
    assert.equal(checkSubset('3/7'), '3/7');
    assert.equal(checkSubset('5%'), '5%');
    for (const bad of ['0/3', '4/3', '1/1 --x', '']) assert.throws(() => checkSubset(bad), { kind: 'refused' });
  });
});
