import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startRawRead } from '../../adapters/hypervisor/raw-read';
import { SshSession } from '../../adapters/ssh/ssh-session';
import { startSshHost, type SandboxSshHost } from '../../scripts/sandbox/sshd-host';

const MiB = 1024 * 1024;

async function readAll(ssh: SshSession, disk: { source: string; format: string; type: string }) {
  const read = await startRawRead(ssh, disk);
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of read.stdout) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { arrived: hash.digest('hex'), bytes, remote: (await read.finished).sha256 };
}

/** The one read of a frozen disk on the hypervisor (over a real sshd): raw bytes out, hashed there as well. */
describe('raw read of a disk on the hypervisor', () => {
  let root: string;
  let host: SandboxSshHost;
  let ssh: SshSession;
  // A hostile file name: a space, quotes, a $( ) and a leading dash in the last part.
  let dir: string;
  const hostile = '-disk \'a"$(touch pwned)".img';

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'cluster-backup-raw-read-'));
    dir = join(root, 'vm disks');
    execFileSync('mkdir', ['-p', dir]);
    host = await startSshHost({ dir: join(root, 'h'), address: '127.0.0.15' });
    ssh = await SshSession.connect('h', host.config);
  });

  after(async () => {
    ssh?.close();
    await host?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('a sparse qcow2 comes out as its raw bytes; the hypervisor`s hash equals the arrival hash', async () => {
    const qcow2 = join(dir, hostile);
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', qcow2, '64M']);
    const data = randomBytes(3 * MiB);
    const chunk = join(root, 'chunk');
    writeFileSync(chunk, data);
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', `write -s ${chunk} 5M 3M`, qcow2], { stdio: 'ignore' });
    const raw = join(root, 'expected.raw');
    execFileSync('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', qcow2, raw]);
    const expected = execFileSync('sha256sum', [raw], { encoding: 'utf8' }).split(' ')[0];
    const got = await readAll(ssh, { source: qcow2, format: 'qcow2', type: 'file' });
    assert.equal(got.bytes, 64 * MiB);
    assert.equal(got.arrived, expected);
    assert.equal(got.remote, expected);
    assert.ok(!existsSync(join(dir, 'pwned')) && !existsSync('pwned'), 'the name never reached a shell unquoted');
  });

  it('a raw file, read as a block device would be (cat), and as a file (nbdcopy, as the guest sees it)', async () => {
    const file = join(dir, 'data.raw');
    const data = randomBytes(2 * MiB + 123);
    writeFileSync(file, data);
    const expected = createHash('sha256').update(data).digest('hex');
    const asBlock = await readAll(ssh, { source: file, format: 'raw', type: 'block' });
    assert.deepEqual([asBlock.arrived, asBlock.remote, asBlock.bytes], [expected, expected, data.length]);
    // Through qemu-nbd the disk is what a guest sees: QEMU rounds a raw file up to whole 512-byte sectors.
    const padded = Buffer.concat([data, Buffer.alloc(512 - (data.length % 512))]);
    const paddedHash = createHash('sha256').update(padded).digest('hex');
    const asFile = await readAll(ssh, { source: file, format: 'raw', type: 'file' });
    assert.deepEqual([asFile.arrived, asFile.remote, asFile.bytes], [paddedHash, paddedHash, padded.length]);
  });

  it('a disk that cannot be read fails the read (pipefail), never a short stream taken as whole', async () => {
    await assert.rejects(
      readAll(ssh, { source: join(dir, 'missing.qcow2'), format: 'qcow2', type: 'file' }),
      /missing\.qcow2/,
    );
    await assert.rejects(
      readAll(ssh, { source: join(dir, 'missing.raw'), format: 'raw', type: 'block' }),
      /missing\.raw/,
    );
  });

  it('refuses a format that is not a plain word', async () => {
    await assert.rejects(startRawRead(ssh, { source: '/x', format: 'raw; rm -rf /', type: 'file' }), /bad disk format/);
  });
});
