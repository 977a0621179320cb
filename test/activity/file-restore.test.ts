// test-runner: heavy (each test boots libguestfs's appliance, an emulated machine)
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  existsSync,
  lstatSync,
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
import { after, before, describe, it } from 'node:test';
import { createServices } from '../../activities/services';
import { createStoreActivities } from '../../activities/store';
import { DUMP_FOLDER } from '../../adapters/image-sets/set-images';
import { ResticImageSets } from '../../adapters/image-sets/restic-image-sets';
import { Restic } from '../../adapters/restic/restic';
import { parseConfig } from '../../config/load';
import { assertRestored, cli, makeDisk, makeSourceTree, NEWLINE, sha256File, TOP_FILE } from '../helpers/guest-files';
import { runActivity } from '../helpers/sandbox';
import { storeOneDiskSet } from '../helpers/restic-set';

const VM = 'cbtest-files';
const STAMP = '20261206T050000Z';
/** An older set with two disks: the ext4 one and an XFS one without a partition table. */
const OLDER = '20261129T050000Z';

/** A whole-disk XFS filesystem (no partition table) holding two files, made with mkfs.xfs -p (a proto file). */
function makeXfsDisk(path: string, dir: string): boolean {
  if (spawnSync('mkfs.xfs', ['-V']).status !== 0) return false;
  const proto = join(dir, 'xfs.proto');
  writeFileSync(
    proto,
    [
      '/dev/null',
      '0 0',
      'd--755 0 0',
      `notes.txt ---640 0 0 ${join(dir, 'xfs-notes')}`,
      'sub d--750 0 0',
      `deep.bin ---600 0 0 ${join(dir, 'xfs-deep')}`,
      '$',
      '$',
      '',
    ].join('\n'),
  );
  spawnSync('truncate', ['-s', '320M', path]);
  const mkfs = spawnSync('mkfs.xfs', ['-q', '-p', proto, path]);
  assert.equal(mkfs.status, 0, mkfs.stderr?.toString());
  return true;
}

/** Every entry below `dir`, relative names as bytes (hex), for "nothing else was written". */
function tree(dir: string): string[] {
  const out: string[] = [];
  const walk = (at: Buffer, rel: string) => {
    for (const name of readdirSync(at, { encoding: 'buffer' })) {
      const path = Buffer.concat([at, Buffer.from('/'), name]);
      const r = `${rel}/${name.toString('latin1')}`;
      out.push(r);
      if (lstatSync(path).isDirectory()) walk(path, r);
    }
  };
  walk(Buffer.from(dir), '');
  return out.sort();
}

/**
 * File-level restore (issue 24) with the real tools: a disk image made here, stored as a set by the product's
 * own store code (files engine: the pull's manifest; restic engine: storeDisk + the record), read with the
 * CLI through libguestfs (one appliance per command: each boots under TCG here, ~40 s).
 */
describe('restore file and restore ls: files out of a stored image set (libguestfs)', () => {
  const root = mkdtempSync(join(tmpdir(), 'cluster-backup-file-restore-'));
  const src = join(root, 'src');
  const disk = join(root, 'disk.raw');
  const filesStore = join(root, 'store-files');
  const resticStore = join(root, 'store-restic');
  const filesConfig = join(root, 'files.json');
  const resticConfig = join(root, 'restic.json');
  const image = join(filesStore, VM, STAMP, 'vdb.raw');
  let imageSha = '';
  let imageMtime = 0;
  let resticSets: ResticImageSets;
  let hasXfs = false;

  before(async () => {
    makeSourceTree(src);
    makeDisk(disk, src);
    imageSha = await sha256File(disk);
    const bytes = statSync(disk).size;
    // files engine: the image where a pull leaves it, then the manifest the product writes.
    const rawFiles = {
      hosts: { hv: { host: '127.0.0.30', user: 'backup', privateKeyFile: '/k', knownHostsFile: '/kh' } },
      hypervisor: { host: 'hv', imageArea: '/img' },
      store: { root: filesStore },
    };
    writeFileSync(filesConfig, JSON.stringify(rawFiles));
    const config = parseConfig(rawFiles, 'test', root);
    const { recordStoredSet } = createStoreActivities({
      config,
      services: createServices({ config, openSsh: () => Promise.reject(new Error('no SSH here')) }),
    });
    mkdirSync(join(filesStore, VM, STAMP), { recursive: true, mode: 0o700 });
    spawnSync('cp', ['--sparse=always', disk, image]);
    const stored = { disk: 'vdb', path: image, bytes, virtualSize: bytes, sha256: imageSha, format: 'raw' as const };
    await runActivity(recordStoredSet, VM, STAMP, [stored], [stored]);
    imageMtime = statSync(image).mtimeMs;
    // The older set: vdb as above, vdc an XFS disk.
    writeFileSync(join(root, 'xfs-notes'), 'xfs notes\n');
    writeFileSync(join(root, 'xfs-deep'), randomBytes(70_000));
    const older = join(filesStore, VM, OLDER);
    mkdirSync(older, { recursive: true, mode: 0o700 });
    spawnSync('cp', ['--sparse=always', disk, join(older, 'vdb.raw')]);
    hasXfs = makeXfsDisk(join(older, 'vdc.raw'), root);
    const xfsImages = hasXfs
      ? [
          {
            disk: 'vdc',
            path: join(older, 'vdc.raw'),
            bytes: statSync(join(older, 'vdc.raw')).size,
            virtualSize: statSync(join(older, 'vdc.raw')).size,
            sha256: await sha256File(join(older, 'vdc.raw')),
            format: 'raw' as const,
          },
        ]
      : [];
    const olderImages = [{ ...stored, path: join(older, 'vdb.raw') }, ...xfsImages];
    await runActivity(recordStoredSet, VM, OLDER, olderImages, olderImages);
    // restic engine: the disk streamed into the repository as the weekly run does, then the set's record.
    const passwordFile = join(root, 'restic.key');
    writeFileSync(passwordFile, 'correct horse battery staple\n', { mode: 0o600 });
    mkdirSync(resticStore, { mode: 0o700 });
    const restic = new Restic({ repository: join(resticStore, 'restic'), passwordFile });
    await restic.init();
    resticSets = new ResticImageSets(restic);
    const inRestic = await storeOneDiskSet(resticSets, { vm: VM, stamp: STAMP, disk: 'vdb', data: readFileSync(disk) });
    assert.equal(inRestic.sha256, imageSha);
    writeFileSync(
      resticConfig,
      JSON.stringify({ ...rawFiles, store: { root: resticStore, engine: 'restic', restic: { passwordFile } } }),
    );
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  async function assertSetUnchanged(): Promise<void> {
    assert.equal(await sha256File(image), imageSha, 'the stored image hashes the same');
    assert.equal(statSync(image).mtimeMs, imageMtime, 'and was not written');
  }

  it('files engine: a folder with hostile names and a file come back with the same bytes, modes and mtimes', async () => {
    const to = join(root, 'out-files', 'restored');
    mkdirSync(join(root, 'out-files'));
    const run = await cli(filesConfig, ['restore', 'file', VM, '/data', `/${TOP_FILE}`, '--to', to, '--json']);
    assert.equal(run.code, 1, `NOT COMPLETE (three entries refused): ${run.stderr}`);
    const result = JSON.parse(run.stdout) as {
      ok: boolean;
      stamp: string;
      refused: { name: string; why: string }[];
      bitsDropped: string[];
    };
    assert.equal(result.ok, false);
    assert.equal(result.stamp, STAMP);
    assert.deepEqual(result.refused.map((r) => r.name).sort(), [
      '/data: a-fifo',
      '/data: absolute-link',
      '/data: sub/climbs-out',
    ]);
    assert.deepEqual(result.bitsDropped, ['sub/setuid']);
    assertRestored(src, to);
    const top = join(to, TOP_FILE);
    assert.deepEqual(readFileSync(top), readFileSync(join(src, TOP_FILE)));
    assert.equal(lstatSync(top).mode & 0o7777, 0o604);
    assert.equal(lstatSync(top).mtimeMs, lstatSync(join(src, TOP_FILE)).mtimeMs);
    assert.equal(lstatSync(to).mode & 0o777, 0o700, 'the destination folder it created is private');
    assert.deepEqual(readdirSync(join(root, 'out-files')), ['restored'], 'no staging folder left beside it');
    assert.equal(existsSync('pwned') || existsSync(join(root, 'pwned')), false, 'no name ran as a command');
    await assertSetUnchanged();

    // The same again without --overwrite: refused before the appliance boots, nothing written.
    const listed = tree(to);
    const again = await cli(filesConfig, ['restore', 'file', VM, `/${TOP_FILE}`, '--to', to]);
    assert.equal(again.code, 1);
    assert.match(
      again.stdout,
      /NOT RESTORED - exists in the destination \(give --overwrite to replace\); nothing was written/,
    );
    assert.match(again.stdout, /top "file" with spaces\.txt/);
    assert.deepEqual(tree(to), listed);
  });

  it('restore ls: the disk, its partition and filesystem, and the folder`s entries with their names escaped', async () => {
    const run = await cli(filesConfig, ['restore', 'ls', VM, '--set', STAMP, '/data']);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /disk vdb: \/dev\/sda/);
    assert.match(run.stdout, /partition \/dev\/sda1/);
    assert.match(run.stdout, /filesystem \/dev\/sda1: ext4/);
    assert.match(run.stdout, /mounted read-only: \/dev\/sda1 on \//);
    assert.match(run.stdout, /file\s+0640\s+6 {2}2020-01-02T03:04:05.000Z {2}a\.txt/);
    assert.match(run.stdout, /new\\nline/, 'a newline in a name is shown escaped, on one line');
    assert.match(run.stdout, /bad\\xff\.txt/);
    assert.match(run.stdout, /symlink\s+0777 .* absolute-link/);
    assert.match(run.stdout, /fifo .* a-fifo/);
    assert.match(run.stdout, /folder\s+0750 .* sub/);
    await assertSetUnchanged();
  });

  it('refused with nothing written: a path not in the image, a set that does not exist, a disk the set lacks', async () => {
    const out = join(root, 'out-refused');
    mkdirSync(out);
    const missing = await cli(filesConfig, ['restore', 'file', VM, '/data/a.txt', '/no/such/file', '--to', out]);
    assert.equal(missing.code, 1, missing.stderr);
    assert.match(missing.stdout, /NOT RESTORED - nothing restored; nothing was written/);
    assert.match(missing.stdout, /\/no\/such\/file: not in cbtest-files\/20261206T050000Z/);
    assert.deepEqual(readdirSync(out), [], 'not even the file that exists was written');

    const noSet = await cli(filesConfig, ['restore', 'file', VM, '--set', '20990101T000000Z', '/data', '--to', out]);
    assert.equal(noSet.code, 2);
    assert.match(
      noSet.stderr,
      /no verified set 20990101T000000Z of "cbtest-files" in the store \(have: 20261129T050000Z, 20261206T050000Z\)/,
    );
    const noDisk = await cli(filesConfig, ['restore', 'ls', VM, '--disk', 'vdz']);
    assert.equal(noDisk.code, 2);
    assert.match(noDisk.stderr, /has no disk "vdz" \(have: vdb\)/);
    const relative = await cli(filesConfig, ['restore', 'file', VM, 'etc/hosts', '--to', out]);
    assert.equal(relative.code, 2);
    assert.match(relative.stderr, /guest path "etc\/hosts" is not absolute/);
    assert.deepEqual(readdirSync(out), []);
    await assertSetUnchanged();
  });

  it('restore mount: a read-only view of the set (files and restic engines), gone after restore umount', async () => {
    for (const [config, engine] of [
      [filesConfig, 'files'],
      [resticConfig, 'restic'],
    ] as const) {
      const mnt = join(root, `mnt-${engine}`);
      mkdirSync(mnt, { mode: 0o700 });
      const mounted = await cli(config, ['restore', 'mount', VM, mnt]);
      assert.equal(mounted.code, 0, `${engine}: ${mounted.stderr}`);
      assert.match(mounted.stdout, new RegExp(`restore mount ${VM} set ${STAMP} -> ${mnt}: mounted read-only`));
      try {
        assert.deepEqual(readFileSync(join(mnt, 'data', 'a.txt')), readFileSync(join(src, 'data', 'a.txt')));
        assert.deepEqual(readFileSync(join(mnt, 'data', NEWLINE)), readFileSync(join(src, 'data', NEWLINE)));
        assert.throws(() => writeFileSync(join(mnt, 'data', 'a.txt'), 'changed'), /EROFS|EACCES|EPERM/);
        assert.throws(() => writeFileSync(join(mnt, 'new-file'), 'x'), /EROFS|EACCES|EPERM/);
        if (engine === 'restic')
          assert.equal(readdirSync(join(resticStore, DUMP_FOLDER)).length, 2, 'a dump + mounts/');
      } finally {
        const unmounted = await cli(config, ['restore', 'umount', mnt]);
        assert.equal(unmounted.code, 0, `${engine}: ${unmounted.stderr}`);
      }
      assert.deepEqual(readdirSync(mnt), [], `${engine}: unmounted`);
      const again = await cli(config, ['restore', 'umount', mnt]);
      assert.equal(again.code, 2, 'not mounted: a usage error');
      assert.match(again.stderr, /is not mounted/);
    }
    await assertSetUnchanged();
    assert.deepEqual(readdirSync(join(resticStore, DUMP_FOLDER, 'mounts')), [], 'no mount record left');
    assert.deepEqual(
      readdirSync(join(resticStore, DUMP_FOLDER)).filter((n) => n !== 'mounts'),
      [],
      'the restic dump was deleted after umount',
    );
    const check = await resticSets.checkSet(VM, STAMP);
    assert.equal(check.state, 'ok', check.problems.join('; '));
  });

  it('an older set with an ext4 and an XFS disk: --disk picks one; without it, two filesystems need --fs', async (t) => {
    if (!hasXfs) return t.skip('mkfs.xfs is not installed (bootstrap installs xfsprogs)');
    const to = join(root, 'out-xfs');
    const run = await cli(filesConfig, [
      'restore',
      'file',
      VM,
      '--set',
      OLDER,
      '--disk',
      'vdc',
      '/notes.txt',
      '/sub',
      '--to',
      to,
    ]);
    assert.equal(run.code, 0, `${run.stdout}${run.stderr}`);
    assert.match(run.stdout, new RegExp(`restore file ${VM} set ${OLDER} -> ${to}: OK`));
    assert.deepEqual(readFileSync(join(to, 'notes.txt')), readFileSync(join(root, 'xfs-notes')));
    assert.equal(lstatSync(join(to, 'notes.txt')).mode & 0o7777, 0o640);
    assert.deepEqual(readFileSync(join(to, 'sub', 'deep.bin')), readFileSync(join(root, 'xfs-deep')));
    assert.equal(lstatSync(join(to, 'sub', 'deep.bin')).mode & 0o7777, 0o600);
    assert.equal(lstatSync(join(to, 'sub')).mode & 0o7777, 0o750);
    const both = await cli(filesConfig, ['restore', 'ls', VM, '--set', OLDER]);
    assert.equal(both.code, 2, both.stderr);
    assert.match(
      both.stderr,
      /2 filesystems and 0 operating systems .*name one with --fs \(\/dev\/sda1 ext4, \/dev\/sdb xfs\)/,
    );
  });
});
