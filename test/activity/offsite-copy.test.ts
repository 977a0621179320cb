import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, openSync, readdirSync, rmSync, statSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createOffsiteActivities } from '../../activities/offsite';
import { stageDaySnapshot } from '../../activities/restic-day-stage';
import { createRestoreStoreActivities } from '../../activities/restore-store';
import { createServices, resticOptions } from '../../activities/services';
import { dayTags } from '../../activities/supim-restic';
import { ResticImageSets } from '../../adapters/image-sets/restic-image-sets';
import { resticImageFrom } from '../../adapters/image-sets/restic-restore-source';
import { initStoreRoot } from '../../adapters/local/store-root';
import { initOffsite, offsiteEnvOf } from '../../adapters/restic/offsite';
import { Restic } from '../../adapters/restic/restic';
import { startRestic } from '../../adapters/restic/restic-process';
import { checkRepository } from '../../adapters/restic/repository-verify';
import { parseConfig } from '../../config/load';
import { dailyOffsiteRequest, weeklyOffsiteRequest, type OffsiteOutcome } from '../../domain/offsite';
import { startRcloneRest, type SandboxRcloneRest } from '../../scripts/sandbox/rclone-rest';
import { runIn } from '../helpers/sandbox';
import { storeOneDiskSet } from '../helpers/restic-set';

const VM = 'cbtest-offsite';
const STAMP = '20261206T050000Z';
const MiB = 1 << 20;

/**
 * Off-site copies on real restic 0.14 and a real `rclone serve restic --append-only` (127.0.0.27): what the
 * backup host copies gets there whole, what it tries to destroy there stays, a server gone mid-copy leaves
 * the copy behind and the next one catches up, and damage there is named. One server, one primary.
 */
describe('off-site copy to an append-only REST server (real restic + rclone)', () => {
  const root = mkdtempSync(join(tmpdir(), 'cluster-backup-offsite-copy-'));
  const serverDir = join(root, 'server');
  let server: SandboxRcloneRest;
  const key = (name: string) => {
    const file = join(root, `${name}.key`);
    writeFileSync(file, `${name}-restic-password\n`, { mode: 0o600 });
    return file;
  };
  const build = (s: SandboxRcloneRest) =>
    parseConfig(
      {
        hosts: { hv: { host: '127.0.0.1', user: 'backup', privateKeyFile: '/k', knownHostsFile: '/kh' } },
        hypervisor: { host: 'hv', imageArea: '/img' },
        store: { root: join(root, 'store'), engine: 'restic', restic: { passwordFile: join(root, 'primary.key') } },
        offsite: {
          far: {
            repository: `${s.url}far/`,
            passwordFile: join(root, 'far.key'),
            httpUser: s.auth!.user,
            httpPasswordFile: s.auth!.passwordFile,
            unreachableSeconds: 2,
            verifySubsets: 1,
          },
        },
      },
      'test',
      root,
    );
  let config: ReturnType<typeof build>;
  let primary: Restic;
  let offsite: Restic;
  const copy = (what: 'week' | 'days', days: string[] = ['2026-339']) => {
    const { copyToOffsite } = createOffsiteActivities({ config });
    const request = what === 'week' ? weeklyOffsiteRequest(STAMP, [VM]) : dailyOffsiteRequest(days);
    const env = new MockActivityEnvironment();
    const beats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => beats.push(structuredClone(d)));
    return { beats, run: runIn(env, copyToOffsite, 'far', request) };
  };
  const storeDay = async (label: string, bytes: number) =>
    primary.backupStdin({
      stdin: Readable.from([randomBytes(bytes)]),
      filename: `supim/${label}.tar`,
      tags: dayTags(label),
    });
  const farDir = () => join(server.dataDir, 'far');
  const files = (sub: string) => {
    try {
      return readdirSync(join(farDir(), sub), { recursive: true, withFileTypes: true }).filter((d) => d.isFile());
    } catch {
      return [];
    }
  };
  const summary = (o: OffsiteOutcome) =>
    `${o.status}: ${o.saved} saved, ${o.skipped} skipped, ${o.bytesAdded} bytes added, ${o.seconds} s`;

  before(async () => {
    key('primary');
    key('far');
    server = await startRcloneRest({ dir: serverDir, address: '127.0.0.27' });
    config = build(server);
    await initStoreRoot(config.store!.root);
    const services = createServices({ config, openSsh: () => Promise.reject(new Error('no SSH here')) });
    const sets = services.resticSets();
    primary = new Restic(resticOptions(config));
    await sets.restic.init();
    await storeOneDiskSet(sets, { vm: VM, stamp: STAMP, disk: 'vda', data: randomBytes(3 * MiB) });
    await storeDay('2026-339', 2 * MiB);
    await initOffsite(offsiteEnvOf(config, 'far'), resticOptions(config));
    offsite = new Restic(offsiteEnvOf(config, 'far'));
  });
  after(async () => {
    await server?.stop();
    if (!process.env.CB_KEEP) rmSync(root, { recursive: true, force: true });
  });

  it('(a) copies the week and the day: the same snapshots there, and check --read-data passes', async () => {
    const week = copy('week');
    const w = await week.run;
    const d = await copy('days').run;
    console.log(`week: ${summary(w)}; day: ${summary(d)}`);
    assert.equal(w.status, 'copied', JSON.stringify(w));
    assert.equal(w.saved, 2); // the disk and the record
    assert.equal(d.status, 'copied', JSON.stringify(d));
    assert.equal(d.saved, 1);
    assert.ok(w.bytesAdded! > 3 * MiB, `${w.bytesAdded}`);
    assert.ok(
      week.beats.some((b) => (b as { phase?: string }).phase === 'copying'),
      JSON.stringify(week.beats),
    );
    const shape = (s: { tags: string[]; paths: string[]; tree?: string }) =>
      `${s.tags.join(',')}|${s.paths.join(',')}|${s.tree}`;
    const here = (await primary.snapshots()).map(shape).sort();
    const there = (await offsite.snapshots()).map(shape).sort();
    assert.equal(there.length, 3);
    assert.deepEqual(there, here); // same tags, paths and tree (content-addressed: the same data)
    const full = await checkRepository(offsite, 'full');
    assert.equal(full.ok, true, full.outputTail);
    // Copied again: everything is there already.
    const again = await copy('week').run;
    assert.deepEqual([again.status, again.saved, again.skipped], ['copied', 0, 2]);
  });

  it('(b) refuses forget, prune and a raw DELETE from the backup host; the data stays intact', async () => {
    const before = (await offsite.snapshots()).map((s) => s.id).sort();
    const packs = files('data')
      .map((f) => f.name)
      .sort();
    const pass = (await readFile(server.auth!.passwordFile, 'utf8')).trim();
    const auth = { Authorization: `Basic ${Buffer.from(`${server.auth!.user}:${pass}`).toString('base64')}` };
    const base = `http://${server.address}:${server.port}/far`;
    // A file no index names (as a copy killed mid-pack leaves): what prune would delete.
    const junk = randomBytes(64 << 10);
    const junkId = createHash('sha256').update(junk).digest('hex');
    assert.equal((await fetch(`${base}/data/${junkId}`, { method: 'POST', headers: auth, body: junk })).status, 200);
    await assert.rejects(offsite.forgetSnapshots([before[0]!]), (err: Error) => {
      console.log(
        `forget: ${err.message.split('\n').find((l) => /forbidden|403|remov/i.test(l)) ?? err.message.slice(-200)}`,
      );
      return true;
    });
    // restic retries each refused DELETE for ~40 s and then exits 0 ("1 / 1 files deleted"): given 10 s, it
    // has asked to delete the file by then, and is stopped (SIGINT: it removes its lock).
    const pruned = await offsite.prune(AbortSignal.timeout(10_000)).then(
      (out) =>
        `exit 0: ${out
          .split('\n')
          .filter((l) => /delet|remov|unreferenced/i.test(l))
          .join(' | ')}`,
      (err: Error) => `failed: ${err.message.slice(-2000)}`,
    );
    console.log(`prune: ${pruned.slice(-400)}`);
    assert.match(pruned, new RegExp(`Remove\\(<data/${junkId.slice(0, 10)}>\\) returned error.*403 Forbidden`));
    for (const path of [`snapshots/${before[0]}`, `data/${packs[0]}`, `data/${junkId}`, 'config']) {
      const res = await fetch(`${base}/${path}`, { method: 'DELETE', headers: auth });
      assert.equal(res.status, 403, `DELETE ${path}: ${res.status}`);
    }
    await offsite.unlockStale(); // the locks of the refused forget and prune
    assert.deepEqual((await offsite.snapshots()).map((s) => s.id).sort(), before);
    const now = files('data').map((f) => f.name);
    assert.deepEqual(now.filter((p) => packs.includes(p)).sort(), packs);
    assert.ok(now.includes(junkId), 'the unreferenced file prune wanted gone is still there');
    const full = await checkRepository(offsite, 'full');
    assert.equal(full.ok, true, full.outputTail);
  });

  it('(c) a server stopped mid-copy leaves the copy behind (transient); restarted, the next copy removes a killed restic`s stale lock and sends only what is missing', async () => {
    const size = 6 * MiB;
    await storeDay('2026-340', size);
    // Slow enough to be stopped mid-copy: 1 MiB/s.
    config.offsite.far!.maxBytesPerSecond = MiB;
    const started = Date.now();
    const first = copy('days', ['2026-340']);
    const port = server.port;
    const pid = server.process.pid!;
    // Stopped once restic copy is sending (after the unlock and the size measure, slow on a loaded machine).
    const copying = (b: unknown) => (b as { phase?: string }).phase === 'copying';
    for (let waited = 0; !first.beats.some(copying); waited += 100) {
      assert.ok(waited < 60_000, `no heartbeat in phase "copying" within 60 s: ${JSON.stringify(first.beats)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, 1500));
    await server.stop(); // by its PID
    try {
      assert.equal(statSync(`/proc/${pid}`, { throwIfNoEntry: false }), undefined);
      await assert.rejects(first.run, (err: Error & { type?: string; kind?: string }) => {
        console.log(`stopped mid-copy after ${Date.now() - started} ms: ${err.type} (${err.kind}): ${err.message}`);
        assert.equal(err.type, 'ResticCopyStoppedError');
        assert.equal(err.kind, 'transient'); // the workflow's bounded retry, then the outcome "behind"
        assert.match(err.message, /accepted no connection for 2 s/);
        return true;
      });
    } finally {
      // The later cases need the server whatever happened here.
      server = await startRcloneRest({ dir: serverDir, address: '127.0.0.27', port });
    }
    config = build(server);
    config.offsite.far!.maxBytesPerSecond = 0;
    offsite = new Restic(offsiteEnvOf(config, 'far'));
    // As after a power cut of the backup host: a restic there killed with its lock held (a backup waiting on
    // its stdin). The next copy removes that lock (its process is gone) and goes on.
    const holder = startRestic(offsiteEnvOf(config, 'far'), ['backup', '--stdin', '--stdin-filename', 'held']);
    holder.stderr.resume();
    holder.stdout.resume();
    for (let waited = 0; files('locks').length === 0; waited += 50) {
      assert.ok(waited < 30_000, 'the held restic took no lock off-site');
      await new Promise((r) => setTimeout(r, 50));
    }
    process.kill(holder.pid!, 'SIGKILL');
    await new Promise((r) => holder.once('close', r));
    const locksLeft = files('locks').length;
    assert.ok(locksLeft >= 1, 'a stale lock is left off-site');
    const second = await copy('days', ['2026-339', '2026-340']).run;
    console.log(`stale locks left by a restic killed there: ${locksLeft}; catch-up: ${summary(second)}`);
    assert.deepEqual([second.status, second.saved, second.skipped], ['copied', 1, 1]);
    // Only the new day: at most its size plus restic's trees and index (and a pack sent twice at most).
    assert.ok(second.bytesAdded! <= size + 5 * MiB, `${second.bytesAdded} bytes added for a ${size}-byte day`);
    assert.equal(files('locks').length, 0, 'the stale lock was removed');
  });

  it('(d) a damaged pack off-site is found by the check after a copy, naming the pack and what it breaks', async () => {
    const packs = files('data')
      .map((f) => ({ id: f.name, path: join(f.parentPath, f.name), bytes: statSync(join(f.parentPath, f.name)).size }))
      .sort((a, b) => b.bytes - a.bytes);
    const victim = packs[0]!; // the largest pack holds file data
    const fd = openSync(victim.path, 'r+');
    writeSync(fd, Buffer.alloc(4096, 0x5a), 0, 4096, Math.floor(victim.bytes / 2));
    closeSync(fd);
    const outcome = await copy('week').run;
    console.log(`after damage: ${summary(outcome)}; check: ${JSON.stringify(outcome.check)}`);
    assert.equal(outcome.status, 'damaged');
    assert.deepEqual(outcome.check?.damagedPacks, [victim.id]);
    assert.ok(outcome.check!.broken.length > 0, JSON.stringify(outcome.check));
    assert.ok(
      outcome.check!.broken.every((b) => b.startsWith(`${VM}/${STAMP}/`) || /^day 2026-3(39|40)$/.test(b)),
      JSON.stringify(outcome.check),
    );
  });

  it('(e) restores read the off-site repository when named: a set and a day the primary lost are found there', async () => {
    const services = createServices({ config, openSsh: () => Promise.reject(new Error('no SSH here')) });
    const { readStoredSet } = createRestoreStoreActivities({ config, services });
    const lost = (await primary.snapshots())
      .filter((s) => s.tags.includes(`set=${STAMP}`) || s.tags.includes('day=2026-339'))
      .map((s) => s.id);
    assert.equal(lost.length, 3);
    await primary.forgetSnapshots(lost);
    await assert.rejects(runIn(new MockActivityEnvironment(), readStoredSet, VM, undefined), /no .*set|NoSuchSet/i);
    const set = await runIn(new MockActivityEnvironment(), readStoredSet, VM, undefined, 'far');
    assert.equal(set.stamp, STAMP);
    assert.deepEqual(
      set.images.map((i) => [i.disk, i.bytes]),
      [['vda', 3 * MiB]],
    );
    // The record names the primary's disk snapshot; off-site the copy has its own id (restic copy's `original`).
    const copyId = set.images[0]!.restic!.snapshot;
    assert.ok(!lost.includes(copyId), 'the off-site copy of the disk snapshot is read, by its own id');
    let dumped = 0;
    for await (const chunk of resticImageFrom(new ResticImageSets(offsite), VM, set.images[0]!, MiB))
      dumped += (chunk as Buffer).length;
    assert.equal(dumped, 2 * MiB); // from the resume point on
    await assert.rejects(
      runIn(new MockActivityEnvironment(), readStoredSet, VM, undefined, 'nowhere'),
      /no off-site repository "nowhere"/,
    );
    await assert.rejects(stageDaySnapshot(config, '2026-339'), /no snapshot tagged day=2026-339/);
    const staged = await stageDaySnapshot(config, '2026-339', undefined, offsiteEnvOf(config, 'far'));
    try {
      assert.equal(statSync(staged.dir).size, 2 * MiB);
    } finally {
      await staged.remove();
    }
  });

  it('(f) the watchdog reads how fresh the off-site repository is: fresh now, stale 200 h later, stale when unreadable', async () => {
    const at = (ms: number) => createOffsiteActivities({ config, now: () => new Date(Date.now() + ms) });
    await storeDay('2026-341', MiB); // in the primary, not copied yet: the lag
    const [now] = await runIn(new MockActivityEnvironment(), at(0).checkOffsiteFreshness);
    assert.deepEqual([now!.repository, now!.stale, now!.maxAgeHours], ['far', false, 192]);
    assert.ok(now!.ageHours! < 1, JSON.stringify(now));
    console.log(`lag: ${JSON.stringify(now!.lag)}`);
    assert.deepEqual([now!.lag?.behindDays, now!.lag?.behindSets, now!.lag?.newestDay], [['2026-341'], [], '2026-340']);
    assert.equal(now!.lag?.newestSets[VM], STAMP);
    assert.ok(now!.lag!.lagHours < 0.5, JSON.stringify(now!.lag));
    // The last check there is the one after (d)'s copy, which found the damaged pack.
    assert.equal(now!.lastCheck?.ok, false, JSON.stringify(now!.lastCheck));
    assert.ok(now!.lastCheck!.damagedPacks.length >= 1);
    const [later] = await runIn(new MockActivityEnvironment(), at(200 * 3_600_000).checkOffsiteFreshness);
    assert.equal(later!.stale, true);
    await server.stop();
    const [down] = await runIn(new MockActivityEnvironment(), at(0).checkOffsiteFreshness);
    console.log(`server down: ${JSON.stringify(down)}`);
    assert.equal(down!.stale, true);
    assert.match(down!.reason!, /connection refused/);
    assert.ok(!down!.reason!.includes(await readFile(server.auth!.passwordFile, 'utf8').then((p) => p.trim())));
  });
});
