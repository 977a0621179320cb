import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import {
  existsSync,
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
import { uploadFile } from '../../adapters/ssh/stream-upload';
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

  it('never writes through a symlink at the partial or the final name', async () => {
    const dir = join(root, 'links');
    const victim = join(root, 'victim');
    mkdirSync(dir);
    mkdirSync(victim);
    writeFileSync(join(victim, 'file'), 'not yours\n');
    const remote = join(dir, 'vda.qcow2');
    symlinkSync(join(victim, 'file'), `${remote}.partial`); // planted where the bytes arrive, even for a resume
    symlinkSync(victim, remote); // and a folder link under the final name: mv must not move into it
    await uploadFile({ ...request(remote), root: dir, resumeFrom: 1 << 20 });
    assert.equal(readFileSync(join(victim, 'file'), 'utf8'), 'not yours\n');
    assert.deepEqual(readdirSync(victim), ['file']);
    assert.ok(lstatSync(remote).isFile(), 'the link under the final name is replaced by the file');
    assert.deepEqual(readFileSync(remote), data);
  });
});
