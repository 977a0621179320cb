import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { checkStaged } from '../../adapters/local/staged-tree';
import { SshSession } from '../../adapters/ssh/ssh-session';
import { RESTORE_PARTIAL_DIR } from '../../adapters/transfer/stream-upload';
import { remoteConflicts, uploadStagedTree } from '../../adapters/transfer/tree-upload';
import { startSshHost, type SandboxSshHost } from '../../scripts/sandbox/sshd-host';

const mode = (path: string) => (lstatSync(path).mode & 0o7777).toString(8);
const mtime = (path: string) => Math.floor(lstatSync(path).mtimeMs / 1000);

/** A restored tree put on a host over SSH (`restore file --host`), on a real sshd at 127.0.0.10. */
describe('putting a staged tree on a host over SSH (restore file --host)', () => {
  let root: string;
  let host: SandboxSshHost;
  let ssh: SshSession;
  let staged: string;
  let restoreRoot: string;
  const big = randomBytes(3 << 20);

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'cluster-backup-tree-upload-'));
    host = await startSshHost({ dir: join(root, 'h'), address: '127.0.0.10' });
    ssh = await SshSession.connect('h', host.config);
    restoreRoot = join(root, 'remote-root');
    // The staged tree: files with their modes and mtimes, a nested folder, a symlink inside, a non-UTF-8 name.
    staged = join(root, 'staged', 'data');
    mkdirSync(join(staged, 'sub'), { recursive: true });
    writeFileSync(join(staged, `it's "quoted" $(touch pwned)`), 'quoted\n');
    chmodSync(join(staged, `it's "quoted" $(touch pwned)`), 0o640);
    writeFileSync(join(staged, 'sub', 'big.bin'), big);
    chmodSync(join(staged, 'sub', 'big.bin'), 0o600);
    writeFileSync(Buffer.from(`${staged}/bad\xff.txt`, 'latin1'), 'latin-1\n');
    symlinkSync('sub/big.bin', join(staged, 'link'));
    utimesSync(join(staged, 'sub', 'big.bin'), 1_600_000_000, 1_600_000_000);
    utimesSync(join(staged, `it's "quoted" $(touch pwned)`), 1_600_000_001, 1_600_000_001);
    chmodSync(join(staged, 'sub'), 0o750);
    utimesSync(join(staged, 'sub'), 1_500_000_000, 1_500_000_000);
    utimesSync(staged, 1_500_000_001, 1_500_000_001);
  });
  after(async () => {
    ssh?.close();
    await host?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  const upload = async (dest: string, overwrite = false) =>
    uploadStagedTree({
      ssh,
      entries: (await checkStaged(staged)).entries,
      stagedTop: staged,
      dest,
      root: restoreRoot,
      overwrite,
    });

  it('puts files, folders and inside symlinks there with their bytes, modes and mtimes; a non-UTF-8 name is refused and named', async () => {
    const dest = join(restoreRoot, 'home', 'data');
    const moved = await upload(dest);
    assert.deepEqual(moved.refused, [
      {
        name: 'bad\\xff.txt',
        why: 'not UTF-8: cannot be named over SSH as it is (restore it with --to on this machine)',
      },
    ]);
    assert.equal(moved.written.length, 5, moved.written.join(', ')); // data, the file, link, sub, big.bin
    assert.deepEqual(readFileSync(join(dest, 'sub', 'big.bin')), big);
    assert.equal(mode(join(dest, 'sub', 'big.bin')), '600');
    assert.equal(mtime(join(dest, 'sub', 'big.bin')), 1_600_000_000);
    assert.equal(readFileSync(join(dest, `it's "quoted" $(touch pwned)`), 'utf8'), 'quoted\n');
    assert.equal(mode(join(dest, `it's "quoted" $(touch pwned)`)), '640');
    assert.equal(readlinkSync(join(dest, 'link')), 'sub/big.bin');
    assert.equal(mode(join(dest, 'sub')), '750');
    assert.equal(mtime(join(dest, 'sub')), 1_500_000_000);
    assert.equal(mtime(dest), 1_500_000_001);
    assert.equal(mode(join(restoreRoot, 'home')), '700', 'a folder on the way is made private');
    assert.deepEqual(readdirSync(restoreRoot), ['home'], `no ${RESTORE_PARTIAL_DIR} left`);
    assert.equal(existsSync(join(dest, 'pwned')) || existsSync('pwned'), false, 'no name ran as a command');
  });

  it('what is there already is named and refused without overwrite; with it, replaced and listed', async () => {
    const dest = join(restoreRoot, 'home', 'data');
    writeFileSync(join(dest, 'sub', 'big.bin'), 'changed by someone');
    const entries = (await checkStaged(staged)).entries;
    const there = await remoteConflicts(ssh, entries, dest);
    assert.deepEqual(
      there.sort(),
      [join(dest, 'link'), join(dest, 'sub', 'big.bin'), join(dest, `it's "quoted" $(touch pwned)`)].sort(),
    );
    await assert.rejects(upload(dest), /exists on h \(.*\) \(give --overwrite to replace it\)/);
    assert.equal(readFileSync(join(dest, 'sub', 'big.bin'), 'utf8'), 'changed by someone');
    const moved = await upload(dest, true);
    assert.equal(moved.overwritten.length, 3);
    assert.deepEqual(readFileSync(join(dest, 'sub', 'big.bin')), big);
    assert.equal(readlinkSync(join(dest, 'link')), 'sub/big.bin');
  });

  it('a symlink planted on the way is never written through: refused, nothing lands outside the root', async () => {
    const outside = join(root, 'outside');
    mkdirSync(outside);
    mkdirSync(join(restoreRoot, 'planted'));
    symlinkSync(outside, join(restoreRoot, 'planted', 'data'));
    await assert.rejects(upload(join(restoreRoot, 'planted', 'data')), /is a symlink: refusing to write through it/);
    assert.deepEqual(readdirSync(outside), []);
  });
});
