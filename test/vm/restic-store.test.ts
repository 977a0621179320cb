import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { resticOptions } from '../../activities/services';
import { ResticImageSets } from '../../adapters/image-sets/restic-image-sets';
import { Restic } from '../../adapters/restic/restic';
import type { ResticImage, WeeklySummary } from '../../domain/weekly-summary';
import { guestWrite } from '../helpers/guest-disk';
import { quietWorkerLogs } from '../helpers/temporal';
import { startVmHarness, type VmHarness } from '../helpers/vm-harness';

quietWorkerLogs();

const VM = 'cbtest-restic';
const MiB = 1024 * 1024;
const DATA_MiB = 96;

async function sha256Of(stream: NodeJS.ReadableStream): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * store.engine restic through complete weekly runs on a real libvirt + QEMU hypervisor in overlay mode:
 * each frozen disk streamed once into a real restic repository, hashed at both ends, recorded after a check;
 * a second backup after the guest rewrote a little adds about that little; retention forgets and prunes.
 */
describe(
  'weekly backups into a restic repository (overlay imaging, real libvirt + QEMU)',
  { concurrency: false },
  () => {
    let vmHost: VmHarness;
    let dataDir: string;
    let repo: ResticImageSets;
    const summaries: WeeklySummary[] = [];

    const weekly = async () => {
      const { result } = await vmHost.runWeekly([VM]);
      const summary = await result();
      summaries.push(summary);
      const vm = summary.vms.find((v) => v.vm === VM)!;
      assert.equal(vm.status, 'backed-up', `${vm.reason ?? ''} (${vm.failedStep ?? ''})`);
      await vmHost.rebooted(VM);
      return { summary, vm, stamp: summary.stamp };
    };

    before(async () => {
      dataDir = mkdtempSync(join(tmpdir(), 'cluster-backup-restic-data-'));
      const dataDisk = join(dataDir, 'data.raw');
      // Random data the store cannot compress: what it adds is what deduplication saved, nothing else.
      execFileSync('sh', ['-c', `head -c ${DATA_MiB * MiB} /dev/urandom > "$1"`, 'sh', dataDisk]);
      vmHost = await startVmHarness({
        name: 'restic-store',
        address: '127.0.0.13',
        store: 'restic',
        storeSettings: { retention: { keepLast: 1, keepWeekly: 0, keepMonthly: 0 } },
        guests: [
          {
            name: VM,
            extraDisks: [
              `<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='${dataDisk}'/><target dev='vdb' bus='virtio'/></disk>`,
            ],
          },
        ],
        hypervisor: {
          vms: [VM],
          imaging: 'overlay',
          overlayReserveBytes: 128 * MiB,
          spaceMarginBytes: MiB,
          keepImages: 1,
        },
      });
      repo = new ResticImageSets(new Restic(resticOptions(vmHost.config)));
    });

    after(async () => {
      await vmHost?.stop();
      if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    });

    it('stores each disk once, hashes equal end to end, the record last, and no image-area copy', async () => {
      const { vm, stamp } = await weekly();
      assert.equal(await vmHost.hypervisor.state(VM), 'running');
      assert.ok(vm.steps.some((s) => s.step === 'storing') && vm.steps.some((s) => s.step === 'recording'));
      assert.ok(!vm.steps.some((s) => s.step === 'imaging-frozen' || s.step === 'pulling'), 'no image-area copy step');
      const setDir = join(vmHost.imageArea, VM, stamp);
      assert.ok(!existsSync(setDir) || readdirSync(setDir).length === 0, `nothing imaged into ${setDir}`);

      const manifest = await repo.readManifest(VM, stamp);
      assert.ok(manifest, 'the set has its record');
      assert.deepEqual(manifest.images.map((i) => i.disk).sort(), ['vda', 'vdb']);
      assert.match(manifest.domainXml ?? '', /<domain/);
      assert.ok(
        !/cluster-backup-overlay-/.test(manifest.domainXml ?? ''),
        'the definition names the disks, not overlays',
      );
      for (const image of manifest.images) {
        assert.ok(image.restic, `${image.disk} names its snapshot`);
        // What comes back out of the repository is what the hypervisor hashed while reading it.
        assert.equal(await sha256Of(repo.diskStream(VM, image.restic.snapshot, image.disk)), image.sha256, image.disk);
        const stored = vm.stored.find((s) => s.disk === image.disk)!;
        assert.equal(stored.sha256, image.sha256);
      }
      const sets = await repo.listSets(VM);
      assert.deepEqual(
        sets.map((s) => [s.stamp, s.verified]),
        [[stamp, true]],
      );
      assert.equal((await repo.restic.check()).ok, true);
    });

    it('a second backup after the guest rewrote 4 MiB of its data disk adds about that, and retention prunes the first', async () => {
      const first = summaries[0]!;
      // 4 MiB of fresh random-looking data at two places: restic chunks around them, the rest deduplicates.
      await guestWrite(vmHost.hypervisor, VM, 'vdb', randomBytes(1)[0]! | 1, 8, 2);
      await guestWrite(vmHost.hypervisor, VM, 'vdb', randomBytes(1)[0]! | 1, 60, 2);
      const before = await repo.restic.stats('raw-data');
      const { vm, stamp } = await weekly();
      const added = (vm.stored as ResticImage[]).reduce((sum, s) => sum + s.dataAdded, 0);
      const raw = vm.stored.reduce((sum, s) => sum + s.bytes, 0);
      console.log(
        `second backup: ${raw} raw bytes, ${added} added to the repository (${((100 * added) / raw).toFixed(2)} %)`,
      );
      // Changed 4 MiB (plus chunk edges, the boot disk's few writes): far below a full copy of 96 MiB random data.
      assert.ok(added < 24 * MiB, `added ${added} bytes`);
      assert.ok(added > 0, 'the rewritten blocks were stored');
      // keepLast 1: the first set is forgotten and its data pruned once the second is recorded.
      assert.deepEqual(
        (await repo.listSets(VM)).map((s) => s.stamp),
        [stamp],
      );
      assert.ok(
        vm.deleted.some((d) => d.includes(first.stamp)),
        vm.deleted.join(', '),
      );
      const after = await repo.restic.stats('raw-data');
      console.log(`repository raw data: ${before.total_size} bytes before, ${after.total_size} after retention`);
      assert.ok(after.total_size < before.total_size + added, "prune returned the first set's unique data");
      const manifest = (await repo.readManifest(VM, stamp))!;
      for (const image of manifest.images)
        assert.equal(await sha256Of(repo.diskStream(VM, image.restic!.snapshot, image.disk)), image.sha256);
    });
  },
);
