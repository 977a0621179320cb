import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { SshSession } from '../../adapters/ssh/ssh-session';
import { uploadFile } from '../../adapters/ssh/stream-upload';
import { startSshHost, type SandboxSshHost } from '../../scripts/sandbox/sshd-host';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

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
});
