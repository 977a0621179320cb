import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { resticOptions } from '../../activities/services';
import { domainSummary } from '../../adapters/hypervisor/restore-xml';
import { ResticImageSets } from '../../adapters/image-sets/restic-image-sets';
import { DUMP_FOLDER } from '../../adapters/image-sets/set-images';
import type { SetManifest } from '../../adapters/image-sets/manifest';
import { Restic } from '../../adapters/restic/restic';
import { initOffsites } from '../../scripts/commands/offsite';
import { startRestoreTest, startRestoreVm } from '../../scripts/commands/restore';
import { startRcloneRest, type SandboxRcloneRest } from '../../scripts/sandbox/rclone-rest';
import { assertRestored, cli, makeDisk, makeSourceTree, TOP_FILE } from '../helpers/guest-files';
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
  const guestSrc = join(offsiteDir, 'guest-src');
  const dataDisk = join(offsiteDir, "data 'disk'.raw");
  const domainXml = (name: string) => vmHost.hypervisor.virsh('dumpxml', '--inactive', '--domain', name);

  before(async () => {
    offsite = await startRcloneRest({ dir: join(offsiteDir, 'server'), address: '127.0.0.29' });
    const farKey = join(offsiteDir, 'far.key');
    writeFileSync(farKey, 'the off-site repository password\n', { mode: 0o600 });
    // A data disk with a partitioned ext4 filesystem of hostile names: file restore reads it from the week's set.
    makeSourceTree(guestSrc);
    makeDisk(dataDisk, guestSrc);
    vmHost = await startVmHarness({
      name: 'restore-restic',
      address: '127.0.0.14',
      store: 'restic',
      guests: [
        {
          name: VM,
          extraDisks: [
            `<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='${dataDisk.replace(/'/g, '&apos;')}'/><target dev='vdb' bus='virtio'/></disk>`,
          ],
        },
      ],
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

  it('restore file and ls out of the weekly run`s set: hostile names here and put back on a host over SSH; the set unchanged', async () => {
    const putBack = join(offsiteDir, 'put-back');
    mkdirSync(putBack, { mode: 0o700 });
    const configFile = join(offsiteDir, 'cli.json');
    const hypervisorHost = { ...vmHost.config.hosts.hypervisor!, restoreRoots: [putBack] };
    writeFileSync(configFile, JSON.stringify({ ...vmHost.config, hosts: { hypervisor: hypervisorHost } }), {
      mode: 0o600,
    });
    type Result = { ok: boolean; stamp: string; to: string; refused: { name: string; why: string }[] };
    const refusedNames = (r: Result) => r.refused.map((x) => x.name).sort();
    const refusedHere = ['/data: a-fifo', '/data: absolute-link', '/data: sub/climbs-out'];

    const to = join(offsiteDir, 'restored');
    const here = await cli(configFile, ['restore', 'file', VM, '/data', `/${TOP_FILE}`, '--to', to, '--json']);
    assert.equal(here.code, 1, `NOT COMPLETE (three entries refused): ${here.stdout}${here.stderr}`);
    const result = JSON.parse(here.stdout) as Result;
    assert.equal(result.stamp, stamp);
    assert.deepEqual(refusedNames(result), refusedHere);
    assertRestored(guestSrc, to);
    const top = join(to, TOP_FILE);
    assert.deepEqual(readFileSync(top), readFileSync(join(guestSrc, TOP_FILE)));
    assert.equal(lstatSync(top).mode & 0o7777, 0o604);
    assert.equal(Math.floor(lstatSync(top).mtimeMs / 1000), 1_600_000_100);

    const ls = await cli(configFile, ['restore', 'ls', VM, '--disk', 'vdb', '/data']);
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, /filesystem \/dev\/sda1: ext4/);
    assert.match(ls.stdout, /file\s+0640\s+6 {2}2020-01-02T03:04:05.000Z {2}a\.txt/);
    assert.match(ls.stdout, /new\\nline/);
    assert.match(ls.stdout, /bad\\xff\.txt/);

    // Put back on the hypervisor's sshd (its host key verified), below its restore root.
    const remote = join(putBack, 'home', 'alice');
    const args = ['restore', 'file', VM, '/data', `/${TOP_FILE}`, '--host', 'hypervisor', '--to', remote, '--json'];
    const onHost = await cli(configFile, args);
    assert.equal(onHost.code, 1, `${onHost.stdout}${onHost.stderr}`);
    const hostResult = JSON.parse(onHost.stdout) as Result;
    assert.equal(hostResult.to, `hypervisor:${remote}`);
    assert.deepEqual(refusedNames(hostResult), [...refusedHere, '/data: bad\\xff.txt'].sort());
    assert.match(hostResult.refused.find((r) => r.name.includes('xff'))!.why, /not UTF-8/);
    assertRestored(guestSrc, remote, { latin1: false });
    assert.deepEqual(readFileSync(join(remote, TOP_FILE)), readFileSync(join(guestSrc, TOP_FILE)));
    assert.equal(lstatSync(join(remote, TOP_FILE)).mode & 0o7777, 0o604);
    assert.deepEqual(readdirSync(putBack), ['home'], 'no partial folder left in the restore root');
    assert.equal(existsSync('pwned') || existsSync(join(remote, 'pwned')), false, 'no name ran as a command');

    // Refused before the appliance boots, nothing written: outside the restore roots, a file that is there.
    const outside = await cli(configFile, [...args.slice(0, -3), '--to', join(offsiteDir, 'elsewhere')]);
    assert.equal(outside.code, 2, outside.stdout);
    assert.match(outside.stderr, /outside its restore roots/);
    assert.equal(existsSync(join(offsiteDir, 'elsewhere')), false);
    const before = readFileSync(join(remote, TOP_FILE));
    const twice = await cli(configFile, [
      'restore',
      'file',
      VM,
      `/${TOP_FILE}`,
      '--host',
      'hypervisor',
      '--to',
      remote,
    ]);
    assert.equal(twice.code, 1, twice.stderr);
    assert.match(twice.stdout, /NOT RESTORED - exists in the destination \(give --overwrite to replace\)/);
    assert.deepEqual(readFileSync(join(remote, TOP_FILE)), before);

    // The set: its restic dumps deleted, its snapshots whole, its record as it was.
    const dumps = join(vmHost.config.store!.root, DUMP_FOLDER);
    assert.deepEqual(readdirSync(dumps), [], 'the dumps were deleted');
    assert.equal(lstatSync(dumps).mode & 0o777, 0o700);
    assert.deepEqual(await repo.readManifest(VM, stamp), manifest);
    const check = await repo.checkSet(VM, stamp);
    assert.equal(check.state, 'ok', check.problems.join('; '));
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
