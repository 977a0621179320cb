import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { resticOptions } from '../../activities/services';
import { ResticImageSets } from '../../adapters/image-sets/restic-image-sets';
import { Restic } from '../../adapters/restic/restic';
import type { ResticImage, WeeklySummary } from '../../domain/weekly-summary';
import { stopProcess } from '../../scripts/sandbox/processes';
import { guestWrite, qemuPid } from '../helpers/guest-disk';
import { spawnWorker, writeConfigFile } from '../helpers/worker-process';
import { readMeter, type ReadMeter } from '../helpers/read-meter';
import { childrenOf } from '../helpers/child-processes';
import { quietWorkerLogs } from '../helpers/temporal';
import { startVmHarness, type VmHarness } from '../helpers/vm-harness';

quietWorkerLogs();

const VM = 'cbtest-restic';
const MiB = 1024 * 1024;
const DATA_MiB = 96;

/** The `restic backup --stdin` a process started, if one runs now. */
const resticBackupOf = (parent: number) =>
  childrenOf(parent).find(({ argv }) => argv[0]?.endsWith('restic') && argv.includes('--stdin'))?.pid;

/** Waits until `parent`'s restic backup holds its repository lock: a disk is streaming. */
async function midStream(parent: number, locks: string): Promise<number> {
  const deadline = Date.now() + 180_000;
  let restic: number | undefined;
  while (!(restic = resticBackupOf(parent)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.ok(restic, 'a restic backup ran');
  while (readdirSync(locks).length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  return restic;
}

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
    let qemuNbdReads: ReadMeter;
    const summaries: WeeklySummary[] = [];

    /** The set is recorded, each disk in exactly one snapshot, whose bytes hash as the record says. */
    const assertStoredOnce = async (stamp: string) => {
      const manifest = await repo.readManifest(VM, stamp);
      assert.ok(manifest, `${stamp} has its record`);
      for (const image of manifest.images) {
        assert.equal((await repo.diskSnapshots(VM, stamp, image.disk)).length, 1, `${image.disk} stored once`);
        assert.equal(await sha256Of(repo.diskStream(VM, image.restic!.snapshot, image.disk)), image.sha256);
      }
    };

    const locks = () => join(resticOptions(vmHost.config).repository, 'locks');

    const weekly = async (taskQueue?: string) => {
      const { result } = await vmHost.runWeekly([VM], taskQueue);
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
      // What the hypervisor's qemu-nbd reads of each frozen disk (nbdcopy reads file disks through it).
      qemuNbdReads = readMeter(join(dataDir, 'meter'), 'qemu-nbd');
      vmHost = await startVmHarness({
        sshEnv: qemuNbdReads.env,
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
      const sources = (await vmHost.hypervisor.virsh('domblklist', '--domain', VM, '--details'))
        .split('\n')
        .map((line) => line.trim().split(/\s+/))
        .filter((cols) => cols[1] === 'disk')
        .map((cols) => cols[3]!);
      const allocated = sources.reduce((sum, path) => sum + statSync(path).blocks * 512, 0);
      qemuNbdReads.reset();
      const { vm, stamp } = await weekly();
      // Each frozen disk read once, on the hypervisor: what qemu-nbd read is about what the disks hold.
      const reads = qemuNbdReads.reads();
      const read = reads.reduce((sum, r) => sum + r.bytes, 0);
      console.log(
        `read on the hypervisor: ${read} bytes of ${allocated} allocated (${(read / allocated).toFixed(3)}x)`,
      );
      assert.deepEqual(reads.map((r) => r.lastArgument).sort(), [...sources].sort(), 'one read of each disk');
      assert.ok(read <= 1.05 * allocated, `read ${read} bytes, ${(read / allocated).toFixed(3)}x allocated`);
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

    it('a second backup (offline, streamed while down) after the guest rewrote 4 MiB adds about that, and retention prunes the first', async () => {
      const first = summaries[0]!;
      // 4 MiB of fresh random-looking data at two places: restic chunks around them, the rest deduplicates.
      await guestWrite(vmHost.hypervisor, VM, 'vdb', randomBytes(1)[0]! | 1, 8, 2);
      await guestWrite(vmHost.hypervisor, VM, 'vdb', randomBytes(1)[0]! | 1, 60, 2);
      const before = await repo.restic.stats('raw-data');
      // This one with imaging offline and streamWhileDown: the disks go from the shut-off VM into the repository.
      const hv = vmHost.config.hypervisors[0]!;
      const configFile = writeConfigFile(vmHost.root, {
        ...vmHost.config,
        temporal: { ...vmHost.config.temporal, taskQueue: 'restic-down' },
        hypervisors: [{ ...hv, perVm: { [VM]: { imaging: 'offline', streamWhileDown: true } } }],
      });
      const worker = spawnWorker(configFile, join(vmHost.root, 'worker-down.log'));
      qemuNbdReads.reset();
      const { vm, stamp } = await weekly('restic-down').finally(() => stopProcess(worker));
      const steps = vm.steps.map((s) => s.step);
      assert.deepEqual(
        steps.filter((s) => ['stopping', 'overlays', 'imaging', 'storing', 'starting', 'recording'].includes(s)),
        ['stopping', 'storing', 'starting', 'recording'],
        steps.join(' '),
      );
      assert.ok(vm.downtimeMs! > vm.steps.find((s) => s.step === 'storing')!.ms, 'down while it streamed');
      assert.equal(qemuNbdReads.reads().length, 2, 'each disk read once, from the shut-off VM');
      const setDir = join(vmHost.imageArea, VM, stamp);
      assert.ok(!existsSync(setDir) || readdirSync(setDir).length === 0, `nothing imaged into ${setDir}`);
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
        JSON.stringify({ deleted: vm.deleted, first: first.stamp, steps: vm.steps.map((s) => s.step) }),
      );
      const after = await repo.restic.stats('raw-data');
      console.log(`repository raw data: ${before.total_size} bytes before, ${after.total_size} after retention`);
      assert.ok(after.total_size < before.total_size + added, "prune returned the first set's unique data");
      const manifest = (await repo.readManifest(VM, stamp))!;
      for (const image of manifest.images)
        assert.equal(await sha256Of(repo.diskStream(VM, image.restic!.snapshot, image.disk)), image.sha256);
    });

    /**
     * A weekly run (on `taskQueue`, whose worker is `worker`) with `fault` done once a disk streams (given
     * restic's pid); it must end backed up, the same QEMU running throughout, each disk stored once.
     */
    const faultMidStream = async (
      fault: (restic: number) => Promise<void>,
      taskQueue?: string,
      worker = process.pid, // the harness's worker runs in this process
    ) => {
      const { result } = await vmHost.runWeekly([VM], taskQueue);
      const restic = await midStream(worker, locks());
      const pid = qemuPid(VM);
      await fault(restic);
      const summary = await result();
      const vm = summary.vms[0]!;
      assert.equal(vm.status, 'backed-up', `${vm.reason ?? ''} (${vm.failedStep ?? ''})`);
      await vmHost.rebooted(VM);
      assert.equal(qemuPid(VM), pid, 'the same QEMU process ran throughout');
      await assertStoredOnce(summary.stamp);
      return vm;
    };

    it('kill -9 of the worker and its restic mid-stream: the guest runs on, the retry clears the stale lock, the set is stored once', async () => {
      const configFile = writeConfigFile(vmHost.root, {
        ...vmHost.config,
        temporal: { ...vmHost.config.temporal, taskQueue: 'restic-kill' },
      });
      const first = spawnWorker(configFile, join(vmHost.root, 'worker-kill-1.log'));
      let second: ReturnType<typeof spawnWorker> | undefined;
      try {
        const killBoth = async (restic: number) => {
          process.kill(restic, 'SIGKILL'); // restic's own lock stays behind, as after a power cut
          const exited = new Promise((resolve) => first.once('exit', resolve));
          first.kill('SIGKILL');
          await exited;
          assert.ok(readdirSync(locks()).length > 0, 'a stale lock was left');
          second = spawnWorker(configFile, join(vmHost.root, 'worker-kill-2.log'));
        };
        await faultMidStream(killBoth, 'restic-kill', first.pid!);
        // A lock file restic was writing when killed stays as <id>-tmp-<n>: restic ignores it; no lock is left.
        assert.deepEqual(
          readdirSync(locks()).filter((f) => !f.includes('-tmp-')),
          [],
          'no lock left',
        );
        assert.equal((await repo.restic.check()).ok, true);
      } finally {
        await stopProcess(first);
        if (second) await stopProcess(second);
      }
    });

    it('the SSH connection cut mid-stream: the retry streams the disk again, stored once, hashes equal', async () => {
      const vm = await faultMidStream(async () => {
        // Every connection the hypervisor's sshd serves ends at once (its per-connection processes).
        for (const { pid } of childrenOf(vmHost.sshHost.process.pid!)) process.kill(pid, 'SIGKILL');
      });
      assert.ok(vm.steps.some((s) => s.step === 'storing'));
    });

    it('libvirtd stopped and started again mid-stream: the stream goes on, the merge waits for it', async () => {
      await faultMidStream(async () => {
        await vmHost.hypervisor.stopDaemon();
        await new Promise((r) => setTimeout(r, 5000)).finally(() => vmHost.hypervisor.startDaemon());
      });
    });
  },
);
