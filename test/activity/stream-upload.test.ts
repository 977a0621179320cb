import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import {
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { RemoteCommandError } from '../../adapters/ssh/remote-command-error';
import { SshSession } from '../../adapters/ssh/ssh-session';
import { partialPathOf, RESTORE_PARTIAL_DIR, uploadFile } from '../../adapters/transfer/stream-upload';
import { startSshHost, type SandboxSshHost } from '../../scripts/sandbox/sshd-host';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const mode = (path: string) => (statSync(path).mode & 0o777).toString(8);

describe('pushing a file to a host as a stream (restores)', () => {
  let root: string;
  let host: SandboxSshHost;
  let ssh: SshSession;
  const data = randomBytes(5 << 20);
  let local: string;

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'cluster-backup-upload-'));
    host = await startSshHost({ dir: join(root, 'h'), address: '127.0.0.11' });
    ssh = await SshSession.connect('h', host.config);
    local = join(root, 'image.qcow2');
    writeFileSync(local, data);
  });
  after(async () => {
    ssh.close();
    await host.stop();
    rmSync(root, { recursive: true, force: true });
  });

  const request = (remotePath: string) => ({
    ssh,
    localPath: local,
    remotePath,
    size: data.length,
    expectedSha256: sha256(data),
  });

  it('arrives whole under a hostile name, hashed on arrival; a second push finds it there', async () => {
    const remote = join(root, "in 'quotes' $(x)", '-v.qcow2');
    const first = await uploadFile(request(remote));
    assert.equal(first.bytesTransferred, data.length);
    assert.equal(first.sha256, sha256(data));
    assert.deepEqual(readFileSync(remote), data);
    assert.ok(!existsSync(`${remote}.partial`));
    const again = await uploadFile(request(remote));
    assert.equal(again.alreadyThere, true);
    assert.equal(again.bytesTransferred, 0);
  });

  it('resumes from the reported offset, trusting nothing past it', async () => {
    const dir = join(root, 'resume');
    mkdirSync(dir);
    const remote = join(dir, 'vda.qcow2');
    // A crashed push: 2 MiB reported, more on disk (written after the last heartbeat) and garbage at its end.
    writeFileSync(`${remote}.partial`, Buffer.concat([data.subarray(0, 3 << 20), Buffer.from('garbage')]));
    const resumed = await uploadFile({ ...request(remote), resumeFrom: 2 << 20 });
    assert.equal(resumed.resumedAt, 2 << 20);
    assert.equal(resumed.bytesTransferred, data.length - (2 << 20));
    assert.deepEqual(readFileSync(remote), data);
  });

  it('deletes a copy whose hash on arrival differs from the manifest, and never renames it into place', async () => {
    const remote = join(root, 'bad', 'vda.qcow2');
    await assert.rejects(
      uploadFile({ ...request(remote), expectedSha256: '0'.repeat(64) }),
      (err: unknown) => err instanceof ApplicationFailure && err.type === 'ChecksumMismatch' && !err.nonRetryable,
    );
    assert.ok(!existsSync(remote));
    assert.ok(!existsSync(`${remote}.partial`));
  });

  it('a shorter partial than reported: resumes from what arrived', async () => {
    const dir = join(root, 'short');
    mkdirSync(dir);
    const remote = join(dir, 'vda.qcow2');
    writeFileSync(`${remote}.partial`, data.subarray(0, 1 << 20));
    const resumed = await uploadFile({ ...request(remote), resumeFrom: 4 << 20 });
    assert.equal(resumed.resumedAt, 1 << 20);
    assert.equal(statSync(remote).size, data.length);
    assert.deepEqual(readFileSync(remote), data);
  });

  it('what it creates is for its owner only: the file 0600, every new folder 0700', async () => {
    const remote = join(root, 'private', 'a', 'b', 'vda.qcow2');
    await uploadFile(request(remote));
    assert.deepEqual(
      [join(root, 'private'), join(root, 'private', 'a'), join(root, 'private', 'a', 'b'), remote].map(mode),
      ['700', '700', '700', '600'],
    );
  });

  it('below its root: a symlinked folder on the way is refused, nothing is written through it', async () => {
    const target = join(root, 'target');
    const elsewhere = join(root, 'elsewhere');
    mkdirSync(join(target, 'day'), { recursive: true });
    mkdirSync(elsewhere);
    symlinkSync(elsewhere, join(target, 'day', 'sub'));
    await assert.rejects(
      uploadFile({ ...request(join(target, 'day', 'sub', 'deeper', 'evil')), root: target }),
      (err: unknown) =>
        err instanceof RemoteCommandError &&
        err.nonRetryable &&
        err.message.includes(`${join(target, 'day', 'sub')} is a symlink`),
    );
    assert.deepEqual(readdirSync(elsewhere), [], 'nothing written outside');
  });

  it('below a root: the partial lives in the root`s own 0700 folder, a host file `<name>.partial` is left alone', async () => {
    const dir = join(root, 'own');
    mkdirSync(dir);
    const remote = join(dir, 'x');
    writeFileSync(`${remote}.partial`, 'a real host file\n');
    await uploadFile({ ...request(remote), root: dir });
    assert.deepEqual(readFileSync(remote), data);
    assert.equal(readFileSync(`${remote}.partial`, 'utf8'), 'a real host file\n');
    assert.equal(mode(join(dir, RESTORE_PARTIAL_DIR)), '700');
    assert.ok(partialPathOf(remote, dir).startsWith(join(dir, RESTORE_PARTIAL_DIR) + '/'));
    // A symlink planted as that folder is refused, nothing written through it.
    const elsewhere = join(root, 'own-elsewhere');
    mkdirSync(elsewhere);
    rmSync(join(dir, RESTORE_PARTIAL_DIR), { recursive: true });
    symlinkSync(elsewhere, join(dir, RESTORE_PARTIAL_DIR));
    await assert.rejects(
      uploadFile({ ...request(join(dir, 'y')), root: dir }),
      (err: unknown) => err instanceof RemoteCommandError && err.nonRetryable && /is a symlink/.test(err.message),
    );
    assert.deepEqual(readdirSync(elsewhere), []);
  });

  it('a root that does not exist yet is created, private, and the file arrives below it', async () => {
    const absent = join(root, 'absent', 'root');
    const remote = join(absent, '2026', '331', 'a.dat');
    await uploadFile({ ...request(remote), root: absent });
    assert.deepEqual(readFileSync(remote), data);
    assert.deepEqual([join(root, 'absent'), absent].map(mode), ['700', '700']);
  });

  it('never writes through a symlink at the final name', async () => {
    const dir = join(root, 'links');
    const victim = join(root, 'victim');
    mkdirSync(dir);
    mkdirSync(victim);
    writeFileSync(join(victim, 'file'), 'not yours\n');
    const remote = join(dir, 'vda.qcow2');
    symlinkSync(victim, remote); // a folder link under the final name: mv must not move into it
    await uploadFile({ ...request(remote), root: dir, resumeFrom: 1 << 20 });
    assert.deepEqual(readdirSync(victim), ['file']);
    assert.ok(lstatSync(remote).isFile(), 'the link under the final name is replaced by the file');
    assert.deepEqual(readFileSync(remote), data);
  });

  it('a resume writes only to the partial it opened: a hard link or symlink swapped in after the size check is refused', async () => {
    const dir = join(root, 'swapped');
    mkdirSync(dir);
    const remote = join(dir, 'vda.qcow2');
    const partial = partialPathOf(remote);
    const victim = join(root, 'victim-file');
    // The real session; just before the write command starts, the partial is replaced (an attacker's timing).
    const racing = (swap: () => void): SshSession =>
      Object.assign(Object.create(ssh) as SshSession, {
        execWithInput: (command: Parameters<SshSession['execWithInput']>[0]) => {
          swap();
          return ssh.execWithInput(command);
        },
      });
    for (const plant of [linkSync, symlinkSync]) {
      writeFileSync(victim, 'not yours\n');
      writeFileSync(partial, data.subarray(0, 3 << 20));
      const swap = () => {
        rmSync(partial);
        plant(victim, partial);
      };
      await assert.rejects(
        uploadFile({ ...request(remote), ssh: racing(swap), resumeFrom: 2 << 20 }),
        (err: unknown) => err instanceof RemoteCommandError && /not a plain file of ours/.test(err.message),
        plant.name,
      );
      assert.equal(readFileSync(victim, 'utf8'), 'not yours\n', plant.name);
      // The next attempt does not resume from it: a fresh partial, the victim still untouched.
      const next = await uploadFile({ ...request(remote), resumeFrom: 2 << 20 });
      assert.equal(next.resumedAt, 0, plant.name);
      assert.deepEqual(readFileSync(remote), data);
      assert.equal(readFileSync(victim, 'utf8'), 'not yours\n', plant.name);
      rmSync(remote);
    }
  });
});
