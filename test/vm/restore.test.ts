import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Client } from '@temporalio/client';
import { RESTORE_TESTS_FILE } from '../../adapters/image-sets/restore-test-log';
import { domainSummary } from '../../adapters/hypervisor/restore-xml';
import { initStoreRoot } from '../../adapters/local/store-root';
import { parseConfig } from '../../config/load';
import type { Config } from '../../config/schema';
import type { RestoreTestLog } from '../../domain/restore';
import type { WeeklySummary } from '../../domain/weekly-summary';
import {
  RESTORE_TEST_SCHEDULE_ID,
  startRestoreDay,
  startRestoreTest,
  startRestoreVm,
} from '../../scripts/commands/restore';
import { applySchedules } from '../../scripts/commands/schedules';
import { startWeekly } from '../../scripts/commands/run-vms';
import { connectClient } from '../../scripts/commands/temporal-client';
import { startHypervisor, type SandboxGuest, type SandboxHypervisor } from '../../scripts/sandbox/libvirt-host';
import { stopProcess } from '../../scripts/sandbox/processes';
import { startSshHost, type SandboxSshHost } from '../../scripts/sandbox/sshd-host';
import type { DevServer } from '../../scripts/sandbox/temporal-dev-server';
import { startSmtpServer, type TestSmtpServer } from '../helpers/smtp';
import { inProcessWorker, quietWorkerLogs, testDevServer } from '../helpers/temporal';
import { spawnWorker, waitForHeartbeat, writeConfigFile } from '../helpers/worker-process';

quietWorkerLogs();

const ALPHA = 'cbtest-restore-alpha';
const COPY = "cbtest-restore 'copy'"; // a space and quotes: must reach virsh and the image area intact
const RESUMED = 'cbtest-restore-resumed';
const SAVED_MAC = '52:54:00:12:34:56';

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
const mode = (path: string) => (statSync(path).mode & 0o777).toString(8);

/** The first sectors of a qcow2 image: boot counter, running/clean-shutdown marker, tick, broken marker. */
function sectors(root: string, image: string, count = 2): string[] {
  const raw = join(root, `sectors-${Date.now()}.raw`);
  execFileSync('qemu-img', ['convert', '-U', '-O', 'raw', image, raw]);
  const head = readFileSync(raw).subarray(0, 512 * count);
  rmSync(raw);
  return Array.from({ length: count }, (_, i) =>
    head
      .subarray(i * 512, (i + 1) * 512)
      .toString()
      .trim(),
  );
}

describe('restore on a real libvirt + QEMU hypervisor', { concurrency: false }, () => {
  let root: string;
  let hypervisor: SandboxHypervisor;
  let sshHost: SandboxSshHost;
  let server: DevServer;
  let smtp: TestSmtpServer;
  let config: Config;
  let worker: { stop: () => Promise<void> };
  let client: Client;
  let closeClient: () => Promise<void>;
  let alpha: SandboxGuest;
  let goodStamp: string;
  let boots = 0;
  const storeRoot = () => join(root, 'store');
  const storedImage = (stamp: string) => join(storeRoot(), ALPHA, stamp, 'vda.qcow2');
  /** The reports of one run (a workflow ID can be run again: restore day runs three times). */
  const mailAbout = (handle: { workflowId: string; firstExecutionRunId: string }) =>
    smtp.messages.filter((m) =>
      String(m.text).includes(`Workflow ${handle.workflowId} (run ${handle.firstExecutionRunId},`),
    );
  const readyLines = () => readFileSync(alpha.consoleLog, 'utf8').match(/cbguest: ready \(boot \d+\)/g) ?? [];
  /** The guest's next boot; on a shared, loaded machine TCG boots can take a while. The console shows why not. */
  const booted = async () => {
    try {
      await alpha.waitReady(++boots, 180_000);
    } catch (err) {
      const console = existsSync(alpha.consoleLog) ? readFileSync(alpha.consoleLog, 'utf8').slice(-2000) : '(none)';
      throw new Error(`${(err as Error).message}; console:\n${console}`);
    }
  };
  const domainXml = (name: string) => hypervisor.virsh('dumpxml', '--inactive', '--domain', name);

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'cluster-backup-restore-'));
    // Each kept as soon as it runs: if another fails to start, `after` still stops what did.
    const started = await Promise.allSettled([
      startHypervisor(join(root, 'libvirt'), { isolated: true }).then((h) => (hypervisor = h)),
      startSshHost({ dir: join(root, 'hypervisor-ssh'), address: '127.0.0.7' }).then((h) => (sshHost = h)),
      testDevServer().then((s) => (server = s)),
      startSmtpServer(mkdtempSync(join(tmpdir(), 'cluster-backup-restore-smtp-'))).then((s) => (smtp = s)),
    ]);
    for (const outcome of started) if (outcome.status === 'rejected') throw outcome.reason;
    alpha = await hypervisor.defineGuest({ name: ALPHA });
    await hypervisor.virsh('start', '--domain', ALPHA);
    await booted();
    config = parseConfig(
      {
        temporal: { address: server.address, taskQueue: 'restore-test' },
        hosts: { hypervisor: sshHost.config, compute: { ...sshHost.config, restoreRoots: [root] } },
        supim: {
          host: 'compute',
          sourceTemplate: join(root, 'source', '{yyyy}', '{ddd}'),
          destinationRoot: join(root, 'backup'),
        },
        hypervisor: {
          host: 'hypervisor',
          uri: hypervisor.uri,
          imageArea: join(root, 'images'),
          vms: [ALPHA],
          shutdownTimeoutSeconds: 30,
          spaceMarginBytes: 1 << 20,
        },
        store: { root: storeRoot(), spaceMarginBytes: 1 << 20 },
        mail: {
          recipients: { weekly: ['ops@cluster.test'], daily: ['data@cluster.test'] },
          smtp: { host: '127.0.0.1', port: smtp.port, security: 'starttls', caFile: smtp.certFile },
        },
        transfer: { heartbeatTimeoutSeconds: 4 },
        restoreTest: { pattern: 'cbguest: ready', timeoutSeconds: 30, memoryMiB: 128 },
      },
      'restore test',
      root,
    );
    await initStoreRoot(storeRoot()); // as `cluster-backup store init` does
    worker = await inProcessWorker(config);
    ({ client, close: closeClient } = await connectClient(config));

    // The way in, for real: the weekly backup of a running guest (boot 1 on its disk).
    const weekly = await startWeekly(client, config, [ALPHA], 'vms-restore-test');
    const summary = (await weekly.result()) as WeeklySummary;
    assert.equal(summary.ok, true, JSON.stringify(summary, null, 2));
    goodStamp = summary.stamp;
    await booted();
    const manifestPath = join(storeRoot(), ALPHA, goodStamp, 'manifest.json');
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as { domainXml?: string };
    assert.match(manifest.domainXml ?? '', /<name>cbtest-restore-alpha<\/name>/, 'the set keeps the definition');
    // The sandbox guest has no network card: its saved definition gets one, so what a restore does to it shows.
    manifest.domainXml = manifest.domainXml!.replace(
      '</devices>',
      `<interface type='user'><mac address='${SAVED_MAC}'/><model type='virtio'/></interface></devices>`,
    );
    writeFileSync(manifestPath, JSON.stringify(manifest, null, 2));
  });

  after(async () => {
    await closeClient?.();
    await worker?.stop();
    for (const name of [COPY, RESUMED]) await hypervisor?.virsh('undefine', '--domain', name).catch(() => undefined);
    await Promise.all([hypervisor?.stop(), sshHost?.stop(), server?.stop(), smtp?.stop()]);
    rmSync(root, { recursive: true, force: true });
  });

  it('restore vm --as while the original runs: a new domain, off, link down, new identity, disk = store', async () => {
    const originalXml = await domainXml(ALPHA);
    const handle = await startRestoreVm(client, config, { vm: ALPHA, mode: 'as', newName: COPY });
    const result = await handle.result();
    assert.equal(result.ok, true, JSON.stringify(result, null, 2));
    assert.equal(result.stamp, goodStamp);
    assert.match(await hypervisor.state(COPY), /shut off/);
    const copyXml = await domainXml(COPY);
    const copy = domainSummary(copyXml);
    const disk = copy.disks[0]!.path;
    assert.ok(disk.startsWith(join(root, 'images', COPY, `restored-${goodStamp}`)), disk);
    assert.equal(sha256(disk), sha256(storedImage(goodStamp)), 'the copy`s disk is the stored image');
    assert.match(copyXml, /<link state='down'\/>/);
    assert.doesNotMatch(copyXml, new RegExp(SAVED_MAC));
    assert.equal(copy.name, COPY);
    assert.notEqual(copy.uuid, domainSummary(originalXml).uuid);
    assert.ok(!copyXml.includes(alpha.consoleLog), 'the copy writes its own console log');
    // Nothing written on the hypervisor is readable by others: the weekly's set, the copy's disk and console.
    // Folders on the way to a guest's disks may be passed (QEMU may run as another user), never listed.
    const consoles = readdirSync(dirname(disk))
      .filter((f) => f.startsWith('console-'))
      .map((f) => join(dirname(disk), f));
    assert.ok(consoles.length > 0, 'the copy has a file-backed console');
    const images = join(root, 'images');
    assert.deepEqual(
      [images, join(images, ALPHA), join(images, ALPHA, goodStamp), join(images, ALPHA, goodStamp, 'vda.qcow2')]
        .concat([join(images, COPY), dirname(disk), disk, ...consoles])
        .map(mode),
      ['711', '711', '700', '600', '711', '711', '600', ...consoles.map(() => '600')],
    );
    // The original: running, same definition, same disk.
    assert.match(await hypervisor.state(ALPHA), /running/);
    assert.equal(await domainXml(ALPHA), originalXml);
    assert.equal(mailAbout(handle)[0]?.subject, `[cluster-backup] OK restore ${ALPHA} as ${COPY}`);

    const again = await (await startRestoreVm(client, config, { vm: ALPHA, mode: 'as', newName: ALPHA })).result();
    assert.equal(again.ok, false);
    assert.match(again.reason ?? '', /already exists/);
    assert.equal(again.pushed.length, 0, 'refused before anything was pushed');
  });

  it('restore test: a good set boots; a set that hashes fine but does not boot fails, and the report says so', async () => {
    const good = await startRestoreTest(client, config, ALPHA, 'restore-test-good');
    // The boot test's files exist only while it runs: their modes are read meanwhile.
    const seen = new Set<string>();
    const watch = setInterval(() => {
      for (const test of readdirSync(join(root, 'images', ALPHA)).filter((n) => n.startsWith('restore-test-'))) {
        const dir = join(root, 'images', ALPHA, test);
        for (const file of [
          join(dir, 'vda.qcow2'),
          join(dir, 'probe', 'console.log'),
          join(dir, 'probe', 'vda.overlay.qcow2'),
        ])
          if (existsSync(file)) seen.add(`${file.slice(dir.length + 1)} ${mode(file)}`);
      }
    }, 50);
    const passed = await good.result().finally(() => clearInterval(watch));
    assert.deepEqual([...seen].sort(), ['probe/console.log 600', 'probe/vda.overlay.qcow2 600', 'vda.qcow2 600']);
    assert.equal(passed.ok, true, JSON.stringify(passed, null, 2));
    assert.equal(passed.result?.stamp, goodStamp);
    assert.match(passed.result?.detail ?? '', /cbguest: ready/);
    assert.match(mailAbout(good)[0]?.subject ?? '', /restore test PASSED: cbtest-restore-alpha/);

    // A newer set of the same guest whose disk carries the broken marker: hashes match, the guest never boots.
    const brokenStamp = goodStamp.replace(/^\d{4}/, (year) => String(Number(year) + 1));
    const brokenDir = join(storeRoot(), ALPHA, brokenStamp);
    cpSync(join(storeRoot(), ALPHA, goodStamp), brokenDir, { recursive: true });
    const raw = join(root, 'broken.raw');
    execFileSync('qemu-img', ['convert', '-O', 'raw', storedImage(goodStamp), raw]);
    const disk = readFileSync(raw);
    disk.write(`${'cbguest broken'.padEnd(511)}\n`, 1536);
    writeFileSync(raw, disk);
    execFileSync('qemu-img', ['convert', '-O', 'qcow2', raw, storedImage(brokenStamp)]);
    rmSync(raw);
    const manifestPath = join(brokenDir, 'manifest.json');
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as {
      stamp: string;
      images: { bytes: number; sha256: string }[];
    };
    manifest.stamp = brokenStamp;
    manifest.images[0]!.bytes = statSync(storedImage(brokenStamp)).size;
    manifest.images[0]!.sha256 = sha256(storedImage(brokenStamp));
    writeFileSync(manifestPath, JSON.stringify(manifest, null, 2));
    try {
      const bad = await startRestoreTest(client, config, ALPHA, 'restore-test-broken');
      const failed = await bad.result();
      assert.equal(failed.ok, false);
      assert.equal(failed.result?.stamp, brokenStamp);
      assert.match(failed.result?.detail ?? '', /no console line matching/);
      const mail = mailAbout(bad)[0]!;
      assert.match(mail.subject ?? '', /restore test FAILED: cbtest-restore-alpha set \d{8}T\d{6}Z/);
      const log = JSON.parse(readFileSync(join(storeRoot(), RESTORE_TESTS_FILE), 'utf8')) as RestoreTestLog;
      assert.equal(log[ALPHA]?.passed, false);
      assert.equal(log[ALPHA]?.stamp, brokenStamp);
    } finally {
      rmSync(brokenDir, { recursive: true, force: true });
    }
    // Nothing of the tests is left: no throw-away domain, no pushed copy, no overlay.
    assert.doesNotMatch(await hypervisor.virsh('list', '--all', '--name'), /cluster-backup-probe/);
    assert.deepEqual(
      readdirSync(join(root, 'images', ALPHA)).filter((n) => n.startsWith('restore-test-')),
      [],
    );
  });

  it('resumes the push after kill -9 of the worker and completes with the hash verified', async () => {
    const queue = 'restore-kill';
    const file = writeConfigFile(root, {
      ...config,
      temporal: { ...config.temporal, taskQueue: queue },
      // Slow enough that the push is under way when the worker dies.
      transfer: { ...config.transfer, maxBytesPerSecond: Math.ceil(statSync(storedImage(goodStamp)).size / 8) },
    });
    const first = spawnWorker(file, join(root, 'worker-kill-1.log'));
    const handle = await startRestoreVm(
      client,
      { ...config, temporal: { ...config.temporal, taskQueue: queue } },
      { vm: ALPHA, mode: 'as', newName: RESUMED },
    );
    const seen = await waitForHeartbeat<{ offset: number; size: number }>(handle, (d) => d.offset > 0);
    assert.ok(seen.offset < seen.size, 'killed mid-push');
    first.kill('SIGKILL');
    await new Promise((resolve) => first.once('exit', resolve));
    const second = spawnWorker(file, join(root, 'worker-kill-2.log'));
    try {
      const result = await handle.result();
      assert.equal(result.ok, true, JSON.stringify(result, null, 2));
      assert.ok(result.pushed[0]!.resumedAt > 0, `resumed, not started over: ${JSON.stringify(result.pushed)}`);
      assert.equal(result.pushed[0]!.sha256, sha256(storedImage(goodStamp)));
      assert.equal(sha256(result.pushed[0]!.path), sha256(storedImage(goodStamp)));
      assert.match(await hypervisor.state(RESUMED), /shut off/);
    } finally {
      await stopProcess(second);
    }
  });

  it('round trip: a corrupted disk replaced by the stored set boots with the backed-up marker; the old file is kept', async () => {
    // Refused while the VM runs, without --stop: nothing is touched.
    const refused = await (
      await startRestoreVm(client, config, { vm: ALPHA, mode: 'replace', stamp: goodStamp }, 'restore-refused')
    ).result();
    assert.equal(refused.ok, false);
    assert.match(refused.reason ?? '', /needs it shut off/);

    await hypervisor.virsh('destroy', '--domain', ALPHA);
    writeFileSync(alpha.disk, 'this disk was destroyed by a careless operator\n');
    chmodSync(alpha.disk, 0o640); // as the host keeps its disks: the restored one takes the same mode
    const handle = await startRestoreVm(client, config, { vm: ALPHA, mode: 'replace', stamp: goodStamp });
    const result = await handle.result();
    assert.equal(result.ok, true, JSON.stringify(result, null, 2));
    assert.equal(sha256(alpha.disk), sha256(storedImage(goodStamp)));
    assert.equal(mode(alpha.disk), '640', 'the live disk has the mode of the disk it replaced, not the push`s');
    assert.equal(result.keptAs.length, 1);
    assert.match(result.keptAs[0]!, /\.before-restore-\d{8}T\d{6}Z$/);
    assert.match(readFileSync(result.keptAs[0]!, 'utf8'), /careless operator/);
    assert.match(await hypervisor.state(ALPHA), /shut off/, 'it was off: it stays off');
    assert.deepEqual(sectors(root, alpha.disk), ['cbguest boot 1', 'cbguest clean-shutdown']);

    await hypervisor.virsh('start', '--domain', ALPHA);
    await booted();
    assert.equal(readyLines().at(-1), 'cbguest: ready (boot 2)', 'booted from the backed-up disk (boot 1 + 1)');

    // --stop: a running VM is shut down cleanly, its disk replaced, and started again.
    const stopped = await (
      await startRestoreVm(client, config, { vm: ALPHA, mode: 'replace', stamp: goodStamp, stop: true }, 'restore-stop')
    ).result();
    assert.equal(stopped.ok, true, JSON.stringify(stopped, null, 2));
    assert.deepEqual(
      stopped.steps.map((s) => s.step),
      ['reading-set', 'checking-target', 'checking-target', 'pushing', 'stopping', 'swapping', 'starting'],
    );
    await booted();
    assert.equal(readyLines().at(-1), 'cbguest: ready (boot 2)');
    assert.match(await hypervisor.state(ALPHA), /running/);
    assert.deepEqual(sectors(root, stopped.keptAs[0]!, 1), ['cbguest boot 2'], 'the disk it ran on is kept');
  });

  it('schedules the weekly restore test with the others, idempotently', async () => {
    const changes = async () =>
      (await applySchedules(client, config)).filter((r) => r.job === 'restore-test').map((r) => r.change);
    assert.deepEqual(await changes(), ['created']);
    assert.deepEqual(await changes(), ['unchanged']);
    const schedule = await client.schedule.getHandle(RESTORE_TEST_SCHEDULE_ID).describe();
    assert.equal(schedule.action.type === 'startWorkflow' && schedule.action.workflowType, 'restoreTest');
    assert.equal(schedule.spec.calendars?.[0]?.dayOfWeek?.[0]?.start, 'SUNDAY');
    assert.equal(schedule.spec.calendars?.[0]?.hour?.[0]?.start, 8);
  });

  it('restore day: into an empty folder identical files; an existing file is listed, not overwritten without --overwrite', async () => {
    const day = '2026-331';
    const backup = join(root, 'backup', '2026', '331');
    mkdirSync(join(backup, 'sub dir'), { recursive: true });
    writeFileSync(join(backup, 'a.txt'), 'ionosphere day 331\n');
    writeFileSync(join(backup, 'sub dir', "b'.bin"), Buffer.alloc(3 << 20, 7));
    utimesSync(join(backup, 'a.txt'), 1_764_000_000, 1_764_000_000);

    const empty = join(root, 'restored-empty');
    const first = await (await startRestoreDay(client, config, day, { to: empty })).result();
    assert.equal(first.ok, true, JSON.stringify(first, null, 2));
    assert.equal(first.filesRestored, 2);
    for (const rel of ['a.txt', join('sub dir', "b'.bin")])
      assert.equal(sha256(join(empty, rel)), sha256(join(backup, rel)));
    assert.equal(Math.floor(statSync(join(empty, 'a.txt')).mtimeMs / 1000), 1_764_000_000);

    const busy = join(root, 'restored-busy');
    mkdirSync(busy);
    writeFileSync(join(busy, 'a.txt'), 'newer work, not to be lost\n');
    const handle = await startRestoreDay(client, config, day, { to: busy });
    const second = await handle.result();
    assert.equal(second.ok, false);
    assert.deepEqual(second.existing, ['a.txt']);
    assert.equal(readFileSync(join(busy, 'a.txt'), 'utf8'), 'newer work, not to be lost\n');
    assert.equal(sha256(join(busy, 'sub dir', "b'.bin")), sha256(join(backup, 'sub dir', "b'.bin")));
    assert.match(String(mailAbout(handle)[0]?.text), /left alone \(already there\): a\.txt/);

    const third = await (await startRestoreDay(client, config, day, { to: busy, overwrite: true })).result();
    assert.equal(third.ok, true);
    assert.deepEqual(third.overwritten, ['a.txt', join('sub dir', "b'.bin")]);
    assert.equal(readFileSync(join(busy, 'a.txt'), 'utf8'), 'ionosphere day 331\n');
    assert.ok(!existsSync(join(busy, 'a.txt.partial')));
  });
});
