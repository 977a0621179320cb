import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { resticOptions } from '../../activities/services';
import { domainSummary } from '../../adapters/hypervisor/restore-xml';
import { ResticImageSets } from '../../adapters/image-sets/restic-image-sets';
import type { SetManifest } from '../../adapters/image-sets/manifest';
import { Restic } from '../../adapters/restic/restic';
import { initOffsites } from '../../scripts/commands/offsite';
import { startRestoreTest, startRestoreVm } from '../../scripts/commands/restore';
import { startRcloneRest, type SandboxRcloneRest } from '../../scripts/sandbox/rclone-rest';
import { quietWorkerLogs } from '../helpers/temporal';
import { startVmHarness, type VmHarness } from '../helpers/vm-harness';

quietWorkerLogs();

const VM = 'cbtest-rrestic';
const COPY = "cbtest-rrestic 'copy'"; // a space and quotes: must reach virsh and the image area intact

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

/** SHA-256 of an image's raw bytes (a qcow2 converted first). */
function rawSha256(root: string, image: string, format: string): string {
  if (format === 'raw') return sha256(image);
  const raw = join(root, `raw-${Date.now()}.raw`);
  execFileSync('qemu-img', ['convert', '-U', '-f', format, '-O', 'raw', image, raw]);
  try {
    return sha256(raw);
  } finally {
    rmSync(raw);
  }
}

/**
 * Restores from store.engine restic on a real libvirt + QEMU hypervisor: a weekly run stores the guest into
 * a real restic repository; restore vm --as, --replace and the boot test read the set from the repository
 * (`restic dump` streamed over SSH, hashed on arrival); a missing or damaged set is refused before anything.
 */
describe('restore from a restic repository (real libvirt + QEMU + restic)', { concurrency: false }, () => {
  let vmHost: VmHarness;
  let repo: ResticImageSets;
  let stamp: string;
  let manifest: SetManifest;
  let boots = 1;
  /** The off-site server (append-only rclone REST): the weekly run copies the set there. */
  let offsite: SandboxRcloneRest;
  const offsiteDir = mkdtempSync(join(tmpdir(), 'cluster-backup-restore-offsite-'));
  const booted = () => vmHost.guests[VM]!.waitReady(++boots, 180_000);
  const domainXml = (name: string) => vmHost.hypervisor.virsh('dumpxml', '--inactive', '--domain', name);

  before(async () => {
    offsite = await startRcloneRest({ dir: join(offsiteDir, 'server'), address: '127.0.0.29' });
    const farKey = join(offsiteDir, 'far.key');
    writeFileSync(farKey, 'the off-site repository password\n', { mode: 0o600 });
    vmHost = await startVmHarness({
      name: 'restore-restic',
      address: '127.0.0.14',
      store: 'restic',
      guests: [{ name: VM }],
      hypervisor: { vms: [VM], imaging: 'overlay', spaceMarginBytes: 1 << 20, keepImages: 1 },
      settings: {
        restoreTest: { pattern: 'cbguest: ready', timeoutSeconds: 60, memoryMiB: 128 },
        offsite: {
          far: {
            repository: `${offsite.url}far/`,
            passwordFile: farKey,
            httpUser: offsite.auth!.user,
            httpPasswordFile: offsite.auth!.passwordFile,
          },
        },
      },
    });
    await initOffsites(vmHost.config, [], () => undefined); // as `cluster-backup offsite init` does
    repo = new ResticImageSets(new Restic(resticOptions(vmHost.config)));
    const { result } = await vmHost.runWeekly([VM]);
    const summary = await result();
    const vm = summary.vms.find((v) => v.vm === VM)!;
    assert.equal(vm.status, 'backed-up', `${vm.reason ?? ''} (${vm.failedStep ?? ''})`);
    assert.deepEqual(
      summary.offsite?.map((o) => [o.repository, o.status]),
      [['far', 'copied']],
      JSON.stringify(summary.offsite),
    );
    await vmHost.rebooted(VM);
    boots = 2;
    stamp = summary.stamp;
    manifest = (await repo.readManifest(VM, stamp))!;
    assert.ok(
      manifest.images.every((i) => i.restic && i.format === 'raw'),
      'a restic set of raw images',
    );
  });

  after(async () => {
    await vmHost?.stop();
    await offsite?.stop();
    rmSync(offsiteDir, { recursive: true, force: true });
  });

  it('restore vm --as --from offsite:far with the primary repository gone: the disks have the set`s SHA-256 and it boots', async () => {
    const primary = resticOptions(vmHost.config).repository;
    renameSync(primary, `${primary}.gone`); // a fire in the backup room: only the off-site copy is left
    const name = 'cbtest-rrestic-far';
    try {
      const request = { vm: VM, mode: 'as' as const, newName: name, offsite: 'far' };
      const result = await (await startRestoreVm(vmHost.client, vmHost.config, request)).result();
      assert.equal(result.ok, true, JSON.stringify(result, null, 2));
      assert.equal(result.stamp, stamp);
      const copy = domainSummary(await domainXml(name));
      assert.equal(copy.disks.length, manifest.images.length);
      for (const disk of copy.disks) {
        const image = manifest.images.find((i) => i.disk === disk.target)!;
        assert.equal(sha256(disk.path), image.sha256, `${disk.target}: the set's bytes, from off-site`);
      }
      await vmHost.hypervisor.virsh('start', '--domain', name);
      const consoles = join(vmHost.imageArea, name, `restored-${stamp}`);
      const ready = () =>
        execFileSync('sh', ['-c', 'cat "$1"/console-* 2>/dev/null || true', 'sh', consoles]).toString();
      const deadline = Date.now() + 180_000;
      while (!/cbguest: ready/.test(ready()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 500));
      assert.match(ready(), /cbguest: ready/, 'the copy restored from off-site booted');
      await vmHost.hypervisor.virsh('destroy', '--domain', name);
      await vmHost.hypervisor.virsh('undefine', '--domain', name);
    } finally {
      renameSync(`${primary}.gone`, primary);
    }
  });

  it('restore vm --as: a new domain from the repository, raw disks with the set`s SHA-256, and it boots', async () => {
    const handle = await startRestoreVm(vmHost.client, vmHost.config, { vm: VM, mode: 'as', newName: COPY });
    const result = await handle.result();
    assert.equal(result.ok, true, JSON.stringify(result, null, 2));
    assert.equal(result.stamp, stamp);
    const copyXml = await domainXml(COPY);
    const copy = domainSummary(copyXml);
    assert.equal(copy.name, COPY);
    assert.equal(copy.disks.length, manifest.images.length);
    for (const disk of copy.disks) {
      const image = manifest.images.find((i) => i.disk === disk.target)!;
      assert.equal(disk.format, 'raw');
      assert.ok(disk.path.startsWith(join(vmHost.imageArea, COPY, `restored-${stamp}`)), disk.path);
      assert.equal(sha256(disk.path), image.sha256, `${disk.target}: the disk is the set's raw bytes`);
    }
    assert.ok(result.pushed.every((p) => p.resumedAt === 0));
    // The copy boots from its raw disk (its console in its own folder; its link down, so it bothers nobody).
    await vmHost.hypervisor.virsh('start', '--domain', COPY);
    const console = join(vmHost.imageArea, COPY, `restored-${stamp}`);
    const deadline = Date.now() + 180_000;
    const ready = () => execFileSync('sh', ['-c', 'cat "$1"/console-* 2>/dev/null || true', 'sh', console]).toString();
    while (!/cbguest: ready/.test(ready()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 500));
    assert.match(ready(), /cbguest: ready/, 'the restored copy booted');
    await vmHost.hypervisor.virsh('destroy', '--domain', COPY);
    await vmHost.hypervisor.virsh('undefine', '--domain', COPY);
  });

  it('the boot test passes from the restic set, and leaves nothing', async () => {
    const handle = await startRestoreTest(vmHost.client, vmHost.config, VM, 'restore-test-restic');
    const passed = await handle.result();
    assert.equal(passed.ok, true, JSON.stringify(passed, null, 2));
    assert.equal(passed.result?.stamp, stamp);
    assert.match(passed.result?.detail ?? '', /cbguest: ready/);
    assert.doesNotMatch(await vmHost.hypervisor.virsh('list', '--all', '--name'), /cluster-backup-probe/);
  });

  it('restore vm --replace: the qcow2 disk gets the set`s bytes (converted), the old file kept, and it boots', async () => {
    const guest = vmHost.guests[VM]!;
    await vmHost.hypervisor.virsh('destroy', '--domain', VM);
    writeFileSync(guest.disk, 'this disk was destroyed by a careless operator\n');
    const handle = await startRestoreVm(vmHost.client, vmHost.config, { vm: VM, mode: 'replace', stamp });
    const result = await handle.result();
    assert.equal(result.ok, true, JSON.stringify(result, null, 2));
    const vda = manifest.images.find((i) => i.disk === 'vda')!;
    const summary = domainSummary(await domainXml(VM));
    assert.equal(summary.disks.find((d) => d.target === 'vda')!.format, 'qcow2', 'the domain keeps its qcow2 disk');
    assert.equal(rawSha256(vmHost.root, guest.disk, 'qcow2'), vda.sha256, 'its raw bytes are the set`s');
    assert.equal(result.keptAs.length, manifest.images.length);
    assert.match(readFileSync(result.keptAs[0]!, 'utf8'), /careless operator/);
    assert.ok(!existsSync(`${guest.disk}.restored-${stamp}.raw`), 'the raw arrival is gone');
    await vmHost.hypervisor.virsh('start', '--domain', VM);
    await booted();
  });

  it('a missing or damaged set is refused with a clear error before anything is touched', async () => {
    const missing = await (
      await startRestoreVm(
        vmHost.client,
        vmHost.config,
        { vm: VM, mode: 'as', newName: 'cbtest-rrestic-missing', stamp: '20990101T000000Z' },
        'restore-restic-missing',
      )
    ).result();
    assert.equal(missing.ok, false);
    assert.match(missing.reason ?? '', /no verified set 20990101T000000Z .* restic repository/);
    assert.equal(missing.pushed.length, 0);

    // A disk snapshot the record names is forgotten: the set is damaged.
    const vda = manifest.images.find((i) => i.disk === 'vda')!;
    await repo.restic.forgetSnapshots([vda.restic!.snapshot]);
    const listBefore = await vmHost.hypervisor.virsh('list', '--all', '--name');
    const damaged = await (
      await startRestoreVm(
        vmHost.client,
        vmHost.config,
        { vm: VM, mode: 'as', newName: 'cbtest-rrestic-damaged' },
        'restore-restic-damaged',
      )
    ).result();
    assert.equal(damaged.ok, false);
    assert.match(damaged.reason ?? '', /vda: snapshot [0-9a-f]{8} is not in the restic repository/);
    assert.equal(damaged.pushed.length, 0);
    assert.equal(await vmHost.hypervisor.virsh('list', '--all', '--name'), listBefore, 'no domain defined');
    assert.ok(!existsSync(join(vmHost.imageArea, 'cbtest-rrestic-damaged')), 'nothing written on the hypervisor');
    // The boot test of a damaged set fails its run (as for the files engine), the reason in the cause.
    const test = await startRestoreTest(vmHost.client, vmHost.config, VM, 'restore-test-restic-damaged');
    await assert.rejects(test.result(), (err: Error & { cause?: { cause?: Error } }) => {
      assert.match(err.cause?.cause?.message ?? '', /vda: snapshot [0-9a-f]{8} is not in the restic repository/);
      return true;
    });
  });
});
