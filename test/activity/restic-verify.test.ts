import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { resticOptions } from '../../activities/services';
import { ResticImageSets } from '../../adapters/image-sets/restic-image-sets';
import { listPackFiles, subsetOfPack } from '../../adapters/restic/repository-packs';
import { checkRepository } from '../../adapters/restic/repository-verify';
import { repositoryNumbers } from '../../adapters/restic/repository-stats';
import { Restic } from '../../adapters/restic/restic';
import { verifyRotating } from '../../adapters/restic/rotating-verify';
import { readVerifyState, verifyStatePath } from '../../adapters/restic/verify-state';
import { parseConfig } from '../../config/load';
import type { SetManifest } from '../../domain/image-set';
import { CLI_JS } from '../../scripts/sandbox/paths';

const N = 4;
const MIB = 1 << 20;

/** Sets as the weekly run stores them (one snapshot per disk, then the record), on real restic 0.14. */
describe('store verify and the repository numbers on a restic repository (real restic 0.14)', () => {
  const root = mkdtempSync(join(tmpdir(), 'cluster-backup-restic-verify-'));
  const storeRoot = join(root, 'store');
  const passwordFile = join(root, 'password');
  const raw = {
    hosts: { hv: { host: '127.0.0.1', user: 'backup', privateKeyFile: '/k', knownHostsFile: '/kh' } },
    hypervisor: { host: 'hv', imageArea: '/img' },
    store: { root: storeRoot, engine: 'restic', restic: { passwordFile, verifySubsets: N } },
  };
  const config = parseConfig(raw, 'test', root);
  const configFile = join(root, 'config.json');
  // 4 MiB packs (restic's smallest), so a few MiB of sets make packs in several subsets.
  const restic = new Restic({ ...resticOptions(config), env: { RESTIC_PACK_SIZE: '4' } });
  const sets = new ResticImageSets(restic);
  const repository = restic.repository;
  /** vm/stamp/disk -> snapshot id and bytes */
  const disks = new Map<string, { snapshot: string; bytes: number }>();
  let setBytes = 0;
  // Real time, a second apart per run: a pack counts as read only by a check that began after it was written.
  let clock = Date.now();
  const now = () => new Date((clock = Math.max(clock + 1000, Date.now())));

  async function storeSet(vm: string, stamp: string, content: Record<string, Buffer>) {
    const images = [];
    for (const [disk, data] of Object.entries(content)) {
      const r = await sets.storeDisk({ vm, stamp, disk, bytes: data.length, stdin: Readable.from([data]) });
      disks.set(`${vm}/${stamp}/${disk}`, { snapshot: r.snapshotId, bytes: data.length });
      setBytes += data.length;
      images.push({
        disk,
        file: `${disk}.raw`,
        format: 'raw' as const,
        bytes: data.length,
        virtualSize: data.length,
        sha256: '0'.repeat(64),
        restic: { snapshot: r.snapshotId, dataAdded: r.dataAdded },
      });
    }
    const manifest: SetManifest = {
      version: 2,
      vm,
      stamp,
      images,
      completedAt: new Date().toISOString(),
      tool: 'test',
      howToCheck: 'restic dump',
    };
    await sets.writeManifest(vm, stamp, manifest);
  }

  const cli = (...args: string[]) =>
    spawnSync(process.execPath, [CLI_JS, '--config', configFile, 'store', 'verify', '--json', ...args], {
      encoding: 'utf8',
    });

  const resticJson = (...args: string[]) => {
    const run = spawnSync('restic', ['--no-cache', ...args, '--json'], {
      encoding: 'utf8',
      env: { ...process.env, RESTIC_REPOSITORY: repository, RESTIC_PASSWORD_FILE: passwordFile },
    });
    assert.equal(run.status, 0, run.stderr);
    return JSON.parse(run.stdout) as { total_size: number; snapshots_count: number };
  };

  /** Ground truth without the product's mapping: which disks no longer dump. */
  function disksThatFailToDump(): string[] {
    const broken: string[] = [];
    for (const [key, { snapshot }] of disks) {
      const [vm, , disk] = key.split('/');
      const run = spawnSync('restic', ['--no-cache', 'dump', snapshot, `/${vm}/${disk}.raw`], {
        env: { ...process.env, RESTIC_REPOSITORY: repository, RESTIC_PASSWORD_FILE: passwordFile },
        maxBuffer: 64 * MIB,
      });
      if (run.status !== 0) broken.push(key);
    }
    return broken.sort();
  }

  before(async () => {
    mkdirSync(storeRoot);
    writeFileSync(passwordFile, 'a restic test password\n', { mode: 0o600 });
    writeFileSync(configFile, JSON.stringify(raw));
    await restic.init();
    const shared = randomBytes(6 * MIB);
    await storeSet('alpha', '20261129T050000Z', { vda: shared, vdb: randomBytes(5 * MIB) });
    // The same disk again a week later: deduplicated, the ratio shows it.
    await storeSet('alpha', '20261206T050000Z', { vda: shared, vdb: randomBytes(5 * MIB) });
    await storeSet('beta', '20261206T050000Z', { vda: randomBytes(6 * MIB) });
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('rotates through subsets 1..N, reading what restic says each holds, covers all data, then wraps', async () => {
    const packs = await listPackFiles(repository);
    const bySubset = (n: number) => packs.filter((p) => subsetOfPack(p.id, N) === n).length;
    assert.ok(new Set(packs.map((p) => subsetOfPack(p.id, N))).size >= 2, 'packs in more than one subset');
    const coverages: number[] = [];
    for (let n = 1; n <= N; n++) {
      if (n === 3) {
        // A new process (the CLI): the rotation is read back from the state file.
        const run = cli();
        assert.equal(run.status, 0, run.stdout + run.stderr);
        const out = JSON.parse(run.stdout) as {
          ok: boolean;
          restic: { read: string; packsRead: number; next: string };
        };
        assert.equal(out.restic.read, `3/${N}`);
        assert.equal(out.restic.packsRead, bySubset(3));
        assert.equal(out.restic.next, `4/${N}`);
        const state = await readVerifyState(storeRoot, N);
        coverages.push(
          packs
            .filter((p) => state.read.some((r) => r.subset === subsetOfPack(p.id, N)))
            .reduce((s, p) => s + p.bytes, 0) / packs.reduce((s, p) => s + p.bytes, 0),
        );
        continue;
      }
      const result = await verifyRotating({ restic, storeRoot, subsets: N, now });
      assert.equal(result.check.ok, true);
      assert.deepEqual(result.check.scope, { subset: n, of: N });
      // restic's own count of the packs it read is the count our bucket rule gives: coverage is computed right.
      assert.equal(result.check.packsRead, bySubset(n), `subset ${n}`);
      assert.equal(result.state.next, (n % N) + 1);
      assert.equal(result.state.read.length, n);
      coverages.push(result.coverage.fraction);
    }
    assert.ok(
      coverages.every((c, i) => i === 0 || c >= coverages[i - 1]!),
      `coverage grows: ${coverages.join(' ')}`,
    );
    assert.ok(coverages[0]! < 1, 'one subset is not all the data');
    assert.equal(coverages.at(-1), 1);
    const mode = statSync(verifyStatePath(storeRoot)).mode & 0o777;
    assert.equal(mode, 0o600);

    const wrapped = await verifyRotating({ restic, storeRoot, subsets: N, now });
    assert.deepEqual(wrapped.check.scope, { subset: 1, of: N });
    assert.equal(wrapped.state.read.length, 1);
    assert.ok(wrapped.coverage.fraction < 1);
  });

  it('the repository numbers are restic stats own, and the state file says the last check', async () => {
    const numbers = await repositoryNumbers(restic, storeRoot, N);
    const rawStats = resticJson('stats', '--mode', 'raw-data');
    const restoreStats = resticJson('stats', '--mode', 'restore-size');
    assert.equal(numbers.storedBytes, rawStats.total_size);
    assert.equal(numbers.restoreBytes, restoreStats.total_size);
    assert.equal(numbers.snapshots, 8); // 5 disks + 3 records
    assert.ok(numbers.restoreBytes > setBytes && numbers.restoreBytes < setBytes + 64 * 1024, 'disks + records');
    // 27 MiB of disks, 6 of them stored twice: the ratio says so (random data does not compress).
    assert.ok(numbers.dedupRatio > 1.2 && numbers.dedupRatio < 1.4, `dedup ${numbers.dedupRatio}`);
    const sizes = spawnSync('find', [join(repository, 'data'), '-type', 'f', '-printf', '%s\n'], { encoding: 'utf8' });
    const fileBytes = sizes.stdout
      .trim()
      .split('\n')
      .reduce((s, l) => s + Number(l), 0);
    assert.equal(numbers.packBytes, fileBytes, 'pack bytes as find counts them');
    assert.equal(numbers.verify.next, 2);
    assert.equal(numbers.verify.subsetsRead, 1);
    assert.equal(numbers.verify.lastCheck?.what, `subset 1/${N}`);
    assert.equal(numbers.verify.lastCheck?.ok, true);
  });

  it('a damaged pack: the subsets without it pass, the one holding it and --full name it and the sets it breaks', async () => {
    const packs = (await listPackFiles(repository)).sort((a, b) => b.bytes - a.bytes);
    const victim = packs[0]!;
    const path = join(repository, 'data', victim.id.slice(0, 2), victim.id);
    chmodSync(path, 0o600);
    const file = await open(path, 'r+');
    await file.write(randomBytes(256), 0, 256, 1000);
    await file.close();
    const expected = disksThatFailToDump();
    assert.ok(expected.length >= 1, 'the damage breaks a disk');

    const holding = subsetOfPack(victim.id, N);
    let state = await readVerifyState(storeRoot, N);
    let sawOkOtherSubset = false;
    for (;;) {
      const result = await verifyRotating({ restic, storeRoot, subsets: N, now });
      const scope = result.check.scope as { subset: number };
      if (scope.subset !== holding) {
        assert.equal(result.check.ok, true, `subset ${scope.subset} does not hold the pack`);
        sawOkOtherSubset = true;
        continue;
      }
      assert.equal(result.check.ok, false);
      assert.deepEqual(
        result.check.damaged.map((d) => d.pack),
        [victim.id],
      );
      const named = result.check.damaged[0]!.sets.filter((s) => s.disk !== 'manifest').map(
        (s) => `${s.vm}/${s.stamp}/${s.disk}`,
      );
      assert.deepEqual(named.sort(), expected);
      state = result.state;
      break;
    }
    assert.equal(state.lastCheck?.ok, false);
    assert.deepEqual(state.lastCheck?.damagedPacks, [victim.id]);
    assert.ok(sawOkOtherSubset || holding === 2, 'a subset without the pack was read and passed');

    const full = cli('--full');
    assert.equal(full.status, 1, full.stderr);
    const out = JSON.parse(full.stdout) as {
      ok: boolean;
      restic: { read: string; damaged: { pack: string; sets: { vm: string; stamp: string; disk: string }[] }[] };
    };
    assert.equal(out.ok, false);
    assert.equal(out.restic.read, 'full');
    assert.deepEqual(
      out.restic.damaged.map((d) => d.pack),
      [victim.id],
    );
    assert.deepEqual(
      out.restic.damaged[0]!.sets.filter((s) => s.disk !== 'manifest')
        .map((s) => `${s.vm}/${s.stamp}/${s.disk}`)
        .sort(),
      expected,
    );
    const text = spawnSync(process.execPath, [CLI_JS, '--config', configFile, 'store', 'verify', '--full'], {
      encoding: 'utf8',
    });
    assert.equal(text.status, 1);
    assert.match(text.stdout, new RegExp(`DAMAGED pack ${victim.id}`));
    for (const key of expected) {
      const [vm, stamp, disk] = key.split('/');
      assert.match(text.stdout, new RegExp(`breaks ${vm}/${stamp} ${disk} `));
    }
    assert.doesNotMatch(text.stdout + text.stderr, /a restic test password/);
  });

  it('a damaged tree pack: the structure check finds it whatever subset is read, naming the sets whose trees it holds', async () => {
    const brokenBefore = disksThatFailToDump();
    const run = (...args: string[]) => {
      const r = spawnSync('restic', ['--no-cache', ...args], {
        encoding: 'utf8',
        env: { ...process.env, RESTIC_REPOSITORY: repository, RESTIC_PASSWORD_FILE: passwordFile },
      });
      assert.equal(r.status, 0, r.stderr);
      return r.stdout;
    };
    // The pack holding the root tree of a disk snapshot that still dumps (found without the product's code).
    const [key, { snapshot }] = [...disks].find(([k]) => !brokenBefore.includes(k))!;
    const tree = (JSON.parse(run('snapshots', '--json', snapshot)) as { tree: string }[])[0]!.tree;
    const packs = run('list', 'index')
      .split('\n')
      .filter(Boolean)
      .flatMap(
        (index) =>
          (JSON.parse(run('cat', 'index', index)) as { packs: { id: string; blobs: { id: string }[] }[] }).packs,
      );
    const victim = packs.find((p) => p.blobs.some((b) => b.id === tree))!.id;
    const path = join(repository, 'data', victim.slice(0, 2), victim);
    chmodSync(path, 0o600);
    const file = await open(path, 'r+');
    await file.write(randomBytes(64), 0, 64, 40);
    await file.close();
    const brokenAfter = disksThatFailToDump();
    assert.ok(brokenAfter.includes(key), `${key} no longer dumps`);

    // A subset that does not hold the tree pack: the structure check alone finds the damage.
    const other = (subsetOfPack(victim, N) % N) + 1;
    const check = await checkRepository(restic, { subset: other, of: N });
    assert.equal(check.ok, false);
    const found = check.damaged.find((d) => d.pack === victim);
    assert.ok(found, `the tree pack is named: ${JSON.stringify(check.damaged.map((d) => d.pack))}`);
    const named = found.sets.filter((s) => s.disk !== 'manifest').map((s) => `${s.vm}/${s.stamp}/${s.disk}`);
    for (const k of brokenAfter.filter((k) => !brokenBefore.includes(k))) assert.ok(named.includes(k), `${k} named`);
    for (const k of named) assert.ok(brokenAfter.includes(k), `${k} is really broken`);
  });
});
