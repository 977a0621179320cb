import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DiskImaging } from '../../adapters/hypervisor/disk-imaging';
import { RemoteDisks } from '../../adapters/hypervisor/remote-disk';
import { blockOverlayDir, makeBlockOverlayDir } from '../../adapters/hypervisor/overlays';
import { VmRecords } from '../../adapters/hypervisor/vm-records';
import { MANIFEST_VERSION } from '../../adapters/image-sets/manifest';
import { RemoteImageSets } from '../../adapters/image-sets/remote-image-sets';
import { SshSession } from '../../adapters/ssh/ssh-session';
import { startSshHost, type SandboxSshHost } from '../../scripts/sandbox/sshd-host';

const mode = (path: string) => (statSync(path).mode & 0o777).toString(8);
const STAMP = '20260101T000000Z';
const limits = { timeoutSeconds: 60, stallSeconds: 30 };

describe('the image area on the hypervisor is not readable by others (real sshd, umask 022)', () => {
  let root: string;
  let host: SandboxSshHost;
  let ssh: SshSession;
  let area: string;
  let sets: RemoteImageSets;

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'cluster-backup-modes-'));
    chmodSync(root, 0o755);
    host = await startSshHost({ dir: join(root, 'h'), address: '127.0.0.12' });
    ssh = await SshSession.connect('h', host.config);
    area = join(root, 'images');
    sets = new RemoteImageSets(ssh, area);
  });
  after(async () => {
    ssh.close();
    await host.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('the set folder 0700, images 0600 (cp of a 0644 raw disk, qemu-img convert to qcow2), the manifest 0600', async () => {
    await sets.freeBytes(); // creates the image area
    const raw = join(root, 'disk.raw');
    writeFileSync(raw, Buffer.alloc(1 << 20, 1), { mode: 0o644 });
    const imaging = new DiskImaging(ssh);
    const disk = { target: 'vda', type: 'file', source: raw, format: 'raw' } as const;
    const rawImage = await imaging.createImage(disk, 'raw', sets.imagePath('db', STAMP, disk, 'raw'), limits);
    const qcow2 = await imaging.createImage(disk, 'qcow2', sets.imagePath('db', STAMP, disk, 'qcow2'), limits);
    execFileSync('qemu-img', ['check', '-q', '-f', 'qcow2', qcow2]);
    const manifest = await sets.writeManifest('db', STAMP, {
      version: MANIFEST_VERSION,
      vm: 'db',
      stamp: STAMP,
      images: [],
      completedAt: '2026-01-01T00:00:00Z',
      tool: 'test',
      howToCheck: 'test',
    });
    // The area and the VM's folder: others may pass (to a restored guest's disks), never list.
    assert.deepEqual([area, sets.vmDir('db'), sets.setDir('db', STAMP), rawImage, qcow2, manifest].map(mode), [
      '711',
      '711',
      '700',
      '600',
      '600',
      '600',
    ]);
  });

  it('the block overlays` folder: QEMU may pass through it and the records` folder above it, never list them', async () => {
    const records = new VmRecords(ssh, area);
    const owner = { workflowId: 'w', runId: 'r' };
    await records.writeHeldDown({ vm: 'db', owner, since: '2026-01-01T00:00:00Z', budgetSeconds: 60 });
    await makeBlockOverlayDir(ssh, area);
    const dir = blockOverlayDir(area);
    assert.deepEqual([join(area, '.cluster-backup'), dir].map(mode), ['711', '711']);
  });

  it('a --replace disk takes the owner and mode of the disk it replaces (not the push`s 0600)', async () => {
    const folder = join(root, 'vms');
    mkdirSync(folder);
    const final = join(folder, 'vda.qcow2');
    const [pushed, keep] = [`${final}.restored`, `${final}.before`];
    writeFileSync(final, 'old disk\n', { mode: 0o640 });
    chmodSync(final, 0o640);
    writeFileSync(pushed, 'restored disk\n', { mode: 0o600 });
    assert.equal(await new RemoteDisks(ssh).swapIn({ pushed, final, keep }), true);
    assert.equal(readFileSync(final, 'utf8'), 'restored disk\n');
    assert.equal(mode(final), '640');
    assert.equal(statSync(final).uid, statSync(keep).uid);
    assert.equal(readFileSync(keep, 'utf8'), 'old disk\n');
    assert.equal(await new RemoteDisks(ssh).swapIn({ pushed, final, keep }), true, 'a retry changes nothing');
    assert.equal(readFileSync(final, 'utf8'), 'restored disk\n');
  });
});
