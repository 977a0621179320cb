import assert from 'node:assert/strict';
import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { applianceEnv, unpackedKernel } from '../../adapters/guestfs/appliance-env';
import { applianceDevice } from '../../adapters/guestfs/guest-view';
import { guestPath } from '../../adapters/guestfs/guestfish';
import { checkStaged, conflicts, moveStaged, showName } from '../../adapters/local/staged-tree';
import { guestPaths } from '../../scripts/commands/file-restore';

describe('staged tree: what a file restore checks before anything reaches --to', () => {
  const root = mkdtempSync(join(tmpdir(), 'cluster-backup-staged-'));
  after(() => rmSync(root, { recursive: true, force: true }));

  it('shows names escaped: newlines, control bytes, backslashes, bytes that are not UTF-8', () => {
    assert.equal(showName('a\nb'), 'a\\nb');
    assert.equal(showName('tab\there'), 'tab\\there');
    assert.equal(showName('back\\slash'), 'back\\\\slash');
    assert.equal(showName(Buffer.from([0x62, 0xff, 0x01])), 'b\\xff\\x01');
    assert.equal(showName('café'), 'café');
  });

  it('keeps files, folders and symlinks that stay inside; refuses symlinks that are absolute or climb out', async () => {
    const top = join(root, 'stage', 'data');
    mkdirSync(join(top, 'a', 'b'), { recursive: true });
    writeFileSync(join(top, 'a', 'b', 'f'), 'x', { mode: 0o4750 });
    symlinkSync('../f2', join(top, 'a', 'up-one')); // data/f2: inside
    symlinkSync('../../../x', join(top, 'a', 'b', 'out')); // above data: refused
    symlinkSync('/etc/passwd', join(top, 'abs')); // absolute: refused
    symlinkSync('b/../../../y', join(top, 'a', 'sneaky')); // climbs out through a folder: refused
    const check = await checkStaged(top);
    assert.deepEqual(
      check.refused.map((r) => r.name),
      ['a/b/out', 'a/sneaky', 'abs'],
    );
    assert.match(check.refused.find((r) => r.name === 'abs')!.why, /absolute/);
    assert.deepEqual(check.bitsDropped, ['a/b/f']);
    assert.equal(lstatSync(join(top, 'a', 'b', 'f')).mode & 0o7777, 0o750);
    assert.deepEqual(
      check.entries.map((e) => `${e.kind}:${e.rel.toString()}`),
      ['dir:', 'dir:a', 'dir:a/b', 'file:a/b/f', 'symlink:a/up-one'],
    );
    for (const gone of ['abs', 'a/sneaky', 'a/b/out']) assert.throws(() => lstatSync(join(top, gone)), /ENOENT/);

    // Into a destination that has a file of the same name: a conflict, unless overwrite.
    const dest = join(root, 'dest', 'data');
    mkdirSync(join(dest, 'a', 'b'), { recursive: true });
    writeFileSync(join(dest, 'a', 'b', 'f'), 'old');
    assert.deepEqual(await conflicts(check.entries, dest), [join(dest, 'a', 'b', 'f')]);
    await assert.rejects(moveStaged(check.entries, top, dest, false), /exists \(give --overwrite/);
    const moved = await moveStaged(check.entries, top, dest, true);
    assert.deepEqual(moved.overwritten, [join(dest, 'a', 'b', 'f')]);
    assert.equal(readFileSync(join(dest, 'a', 'b', 'f'), 'utf8'), 'x');
    assert.equal(readlinkSync(join(dest, 'a', 'up-one')), '../f2');
  });

  it('refuses to write into a symlink where a folder is expected', async () => {
    const top = join(root, 'stage2', 'd');
    mkdirSync(join(top, 'sub'), { recursive: true });
    writeFileSync(join(top, 'sub', 'f'), 'x');
    const check = await checkStaged(top);
    const dest = join(root, 'dest2', 'd');
    mkdirSync(dest, { recursive: true });
    mkdirSync(join(root, 'elsewhere'));
    symlinkSync(join(root, 'elsewhere'), join(dest, 'sub'));
    assert.deepEqual(await conflicts(check.entries, dest), [join(dest, 'sub')]);
    await assert.rejects(moveStaged(check.entries, top, dest, true), /is there and is not a folder/);
    assert.throws(() => lstatSync(join(root, 'elsewhere', 'f')), /ENOENT/, 'nothing written through the symlink');
  });

  it('guest paths: absolute, normalized; guestfish gets nothing relative', () => {
    assert.deepEqual(guestPaths(['/data/../etc//hosts', '/']), ['/etc/hosts', '/']);
    assert.throws(() => guestPaths(['etc/hosts']), /not absolute/);
    assert.throws(() => guestPaths([]), /at least one path/);
    assert.throws(() => guestPath('-rf'), /not absolute/);
    assert.equal(applianceDevice(0), '/dev/sda');
    assert.equal(applianceDevice(1), '/dev/sdb');
    assert.equal(applianceDevice(26), '/dev/sdaa');
  });

  it('appliance environment: direct backend, TCG without KVM, an unpacked kernel found by its modules.dep', () => {
    const kdir = join(root, 'kernel');
    mkdirSync(join(kdir, 'boot'), { recursive: true });
    writeFileSync(join(kdir, 'boot', 'vmlinuz-6.1.0-9-amd64'), '');
    assert.equal(unpackedKernel(kdir), undefined, 'no modules.dep: not usable');
    mkdirSync(join(kdir, 'lib', 'modules', '6.1.0-9-amd64'), { recursive: true });
    writeFileSync(join(kdir, 'lib', 'modules', '6.1.0-9-amd64', 'modules.dep'), '');
    const env = applianceEnv({}, { kernelDir: kdir, kvmUsable: false });
    assert.equal(env.LIBGUESTFS_BACKEND, 'direct');
    assert.equal(env.LIBGUESTFS_BACKEND_SETTINGS, 'force_tcg');
    const bootHasKernel = env.SUPERMIN_KERNEL === undefined;
    if (!bootHasKernel) {
      assert.equal(env.SUPERMIN_KERNEL, join(kdir, 'boot', 'vmlinuz-6.1.0-9-amd64'));
      assert.equal(env.SUPERMIN_MODULES, join(kdir, 'lib', 'modules', '6.1.0-9-amd64'));
      assert.equal(env.SUPERMIN_KERNEL_VERSION, '6.1.0-9-amd64');
    }
    const kept = applianceEnv(
      { SUPERMIN_KERNEL: '/k', LIBGUESTFS_BACKEND: 'libvirt' },
      { kernelDir: kdir, kvmUsable: true },
    );
    assert.equal(kept.SUPERMIN_KERNEL, '/k');
    assert.equal(kept.LIBGUESTFS_BACKEND, 'libvirt');
    assert.equal(kept.LIBGUESTFS_BACKEND_SETTINGS, undefined);
  });
});
