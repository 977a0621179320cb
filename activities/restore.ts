import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { Config } from '../config/schema';
import { storeTaskQueue } from '../config/temporal-connection';
import { fileStamp } from '../domain/format';
import {
  nextVmToTest,
  type PushedImage,
  type RestoreNetwork,
  type RestoreTestLog,
  type RestoreTestResult,
  type StoredSetForRestore,
} from '../domain/restore';
import { restoreReport, type RestoreReportRequest } from '../domain/restore-report';
import type { BootTestOutcome, PushProgress, RestorePlan, RestoreTarget } from '../domain/restore-plan';
import { unsafeVmNameReason } from '../domain/vm-names';
import { consoleLines } from '../domain/console-tail';
import { bootProbe } from '../adapters/hypervisor/boot-probe';
import { putDiskBack, swapInDisk } from '../adapters/hypervisor/disk-swap';
import { LibvirtDriver } from '../adapters/hypervisor/libvirt-driver';
import {
  consoleFiles,
  type RestoredDomain,
  restoredDomainXml,
  RestoreXmlError,
} from '../adapters/hypervisor/restore-xml';
import { LocalImageSets } from '../adapters/image-sets/local-image-sets';
import { requireStoreRoot } from '../adapters/local/store-root';
import { readRestoreTestLog, recordRestoreTestResult } from '../adapters/image-sets/restore-test-log';
import { MANIFEST, ManifestError, type ManifestImage } from '../adapters/image-sets/manifest';
import { Mailer } from '../adapters/mail/mailer';
import { PASSABLE_UMASK, PRIVATE_UMASK } from '../adapters/ssh/remote-modes';
import { quote } from '../adapters/ssh/shell-quote';
import type { SshSession } from '../adapters/ssh/ssh-session';
import { partialPathOf, uploadFile } from '../adapters/transfer/stream-upload';
import { requireSection } from './config-section';
import { createDayRestoreActivities } from './restore-day';
import { whileHeartbeating } from './heartbeat';

/**
 * When the running boot test's time limit started: when its FIRST attempt was scheduled (Temporal keeps
 * scheduledTimestampMs across retries; currentAttemptScheduledTimestampMs is this attempt's), so a retry
 * gets what is left of the limit, never a new one.
 */
export function bootTestStartedAtMs(): number {
  return Context.current().info.scheduledTimestampMs;
}

/** The restore activities that read the backup store's disk: they run on the store task queue. */
export const RESTORE_STORE_ACTIVITIES = [
  'readStoredSet',
  'pushImage',
  'pickVmToTest',
  'recordRestoreTest',
  'readRestoreTests',
  'restoreSupimDay',
] as const;

export interface RestoreDeps {
  config: Config;
  openSsh: (hostKey: string) => Promise<SshSession>;
  now?: () => Date;
}

const refuse = (message: string, type: string) => ApplicationFailure.nonRetryable(message, type);

export function createRestoreActivities({ config, openSsh, now = () => new Date() }: RestoreDeps) {
  const store = () => new LocalImageSets(requireSection(config.store, 'store').root);

  async function withHypervisor<T>(use: (ssh: SshSession, driver: LibvirtDriver) => Promise<T>): Promise<T> {
    const hv = requireSection(config.hypervisor, 'hypervisor');
    const ssh = await openSsh(hv.host);
    try {
      return await use(ssh, new LibvirtDriver(ssh, hv.uri));
    } finally {
      ssh.close();
    }
  }

  // ---- store task queue: these read the backup store's disk ----

  /** The set a restore uses: the given stamp, or the newest verified one; every image present, right size. */
  async function readStoredSet(vm: string, stamp?: string): Promise<StoredSetForRestore> {
    const images = store();
    const verified = (await images.listSets(vm)).filter((s) => s.verified);
    const chosen = stamp ?? verified.at(-1)?.stamp;
    if (!chosen) throw refuse(`the store ${images.root} holds no verified set of ${JSON.stringify(vm)}`, 'NoSuchSet');
    if (!verified.some((s) => s.stamp === chosen)) {
      const have = verified.map((s) => s.stamp).join(', ') || 'none';
      throw refuse(`no verified set ${chosen} of ${JSON.stringify(vm)} in the store (have: ${have})`, 'NoSuchSet');
    }
    const dir = images.setDir(vm, chosen);
    const manifest = await images.readManifest(vm, chosen).catch((err: unknown) => {
      if (err instanceof ManifestError) throw refuse(`${vm}/${chosen}/${MANIFEST} ${err.message}`, 'DamagedSet');
      throw err;
    });
    if (!manifest) throw refuse(`${vm}/${chosen} has no manifest`, 'NoSuchSet');
    for (const image of manifest.images) {
      const size = await stat(join(dir, image.file)).then(
        (s) => s.size,
        () => -1,
      );
      if (size !== image.bytes)
        throw refuse(
          `${vm}/${chosen}/${image.file}: ${size < 0 ? 'missing' : `${size} bytes`}, the manifest says ${image.bytes}`,
          'DamagedSet',
        );
    }
    return {
      vm,
      stamp: chosen,
      images: manifest.images,
      ...(manifest.domainXml ? { domainXml: manifest.domainXml } : {}),
    };
  }

  /**
   * Pushes one stored image to the hypervisor as a stream, resumed from the last heartbeat after a crash
   * or a cut link; the hypervisor hashes it on arrival and only a copy with the manifest's SHA-256 is
   * renamed to `target.pushPath`.
   */
  async function pushImage(
    vm: string,
    stamp: string,
    image: ManifestImage,
    target: RestoreTarget,
  ): Promise<PushedImage> {
    const hv = requireSection(config.hypervisor, 'hypervisor');
    const localPath = join(store().setDir(vm, stamp), image.file);
    const previous = Context.current().info.heartbeatDetails as PushProgress | undefined;
    const progress: PushProgress = {
      image: target.pushPath,
      offset: previous?.image === target.pushPath ? previous.offset : 0,
      size: image.bytes,
    };
    const ssh = await openSsh(hv.host);
    try {
      const pushed = await whileHeartbeating(
        () => progress,
        () =>
          uploadFile({
            ssh,
            localPath,
            remotePath: target.pushPath,
            umask: PASSABLE_UMASK, // a guest may run from these disks
            size: image.bytes,
            expectedSha256: image.sha256,
            resumeFrom: progress.offset,
            maxBytesPerSecond: config.transfer.maxBytesPerSecond,
            signal: Context.current().cancellationSignal,
            onProgress: (done) => {
              progress.offset = done;
            },
          }),
      );
      return {
        disk: image.disk,
        path: target.pushPath,
        format: image.format,
        bytes: image.bytes,
        sha256: pushed.sha256,
        resumedAt: pushed.resumedAt,
      };
    } finally {
      ssh.close();
    }
  }

  async function readRestoreTests(): Promise<RestoreTestLog> {
    return readRestoreTestLog(store().root);
  }

  /** The VM whose newest set is boot-tested next: never tested first, else the one tested longest ago. */
  async function pickVmToTest(): Promise<string | undefined> {
    const images = store();
    const candidates: string[] = [];
    for (const vm of await images.listVms()) {
      if ((await images.listSets(vm)).some((s) => s.verified)) candidates.push(vm);
    }
    return nextVmToTest(candidates, await readRestoreTests());
  }

  async function recordRestoreTest(result: RestoreTestResult): Promise<void> {
    await requireStoreRoot(store().root); // an unmounted disk must not get a stray file
    await recordRestoreTestResult(store().root, result);
  }

  // ---- main task queue: these only talk to the hypervisor ----

  /**
   * Checks the restore can go ahead and plans where each image goes. as: the new name is safe and unused,
   * images go to `<imageArea>/<new name>/restored-<set>/`. replace: the VM exists and is shut off (or
   * running with `stop`); each image is pushed next to the disk it replaces, and that disk is kept as
   * `<file>.before-restore-<restore stamp>`.
   */
  async function planRestore(
    mode: 'as' | 'replace',
    vm: string,
    set: { stamp: string; images: ManifestImage[] },
    options: { newName?: string; stop?: boolean; restoreStamp: string },
  ): Promise<RestorePlan> {
    const hv = requireSection(config.hypervisor, 'hypervisor');
    const shutdownTimeoutSeconds = hv.perVm[vm]?.shutdownTimeoutSeconds ?? hv.shutdownTimeoutSeconds;
    return withHypervisor(async (_ssh, driver) => {
      if (mode === 'as') {
        const name = options.newName ?? '';
        const problem = unsafeVmNameReason(name);
        if (problem) throw refuse(`refused restore name ${JSON.stringify(name)}: ${problem}`, 'BadRequest');
        const existing = await driver.state(name);
        if (existing.state !== 'missing')
          throw refuse(
            `a domain named ${JSON.stringify(name)} already exists (${existing.detail}); choose another name`,
            'RestoreNameExists',
          );
        const dir = `${hv.imageArea}/${name}/restored-${set.stamp}`;
        return {
          domain: name,
          dir,
          wasRunning: false,
          shutdownTimeoutSeconds,
          targets: set.images.map((i) => ({ disk: i.disk, format: i.format, pushPath: `${dir}/${i.file}` })),
        };
      }
      const state = await driver.state(vm);
      if (state.state === 'missing')
        throw refuse(
          `no domain ${JSON.stringify(vm)} to replace the disks of; restore it with --as <name>`,
          'VmMissing',
        );
      const wasRunning = state.state === 'running';
      if (state.state !== 'shut-off' && !(wasRunning && options.stop)) {
        throw refuse(
          `${vm} is ${state.detail}: --replace needs it shut off (or add --stop to shut it down cleanly first)`,
          'VmNotShutOff',
        );
      }
      const disks = await driver.disks(vm);
      const targets = set.images.map((image): RestoreTarget => {
        const disk = disks.find((d) => d.target === image.disk);
        if (!disk) throw refuse(`${vm} has no disk ${image.disk} any more; restore with --as <name>`, 'DiskMismatch');
        if (disk.format !== image.format)
          throw refuse(
            `${vm}'s disk ${image.disk} is ${disk.format} now, the set's image is ${image.format}`,
            'DiskMismatch',
          );
        return {
          disk: image.disk,
          format: image.format,
          pushPath: `${disk.source}.restored-${set.stamp}`,
          finalPath: disk.source,
          keepAs: `${disk.source}.before-restore-${options.restoreStamp}`,
        };
      });
      return { domain: vm, wasRunning, shutdownTimeoutSeconds, targets };
    });
  }

  /**
   * Defines the copy from the saved XML (see restoredDomainXml) and returns the devices left out of it (tied
   * to the host). Idempotent: a domain of that name with this UUID is this restore's own (a retry); any other
   * domain of that name is refused, never touched.
   */
  async function defineRestoredVm(
    savedXml: string,
    plan: RestorePlan,
    uuid: string,
    network: RestoreNetwork,
    from: string,
  ): Promise<string[]> {
    const hv = requireSection(config.hypervisor, 'hypervisor');
    let copy: RestoredDomain;
    try {
      copy = restoredDomainXml(savedXml, {
        name: plan.domain,
        uuid,
        disks: plan.targets.map((t) => ({ target: t.disk, path: t.pushPath, format: t.format })),
        network,
        consoleDir: plan.dir!,
        description: `restored by cluster-backup from ${from}`,
      });
    } catch (err) {
      if (err instanceof RestoreXmlError) throw refuse(err.message, 'RestoreXmlError');
      throw err;
    }
    await withHypervisor(async (ssh, driver) => {
      if ((await driver.state(plan.domain)).state !== 'missing') {
        const existing = await ssh.run(['virsh', '-q', '-c', hv.uri, 'domuuid', '--domain', plan.domain]);
        if (existing.toString('utf8').trim() === uuid) return;
        throw refuse(
          `a domain named ${JSON.stringify(plan.domain)} appeared meanwhile; not touched`,
          'RestoreNameExists',
        );
      }
      const file = `${plan.dir}/domain.xml`;
      // Its consoles are created here, 0600, before QEMU writes to them (libvirt gives them to its user).
      const consoles = consoleFiles(copy.xml).map(quote).join(' ');
      const touch = consoles ? ` && touch -- ${consoles} && chmod 0600 -- ${consoles}` : '';
      await ssh.run({ shell: `${PRIVATE_UMASK}${touch} && cat > ${quote(file)}` }, { input: copy.xml });
      await ssh.run(['virsh', '-q', '-c', hv.uri, 'define', file]);
    });
    return copy.removed;
  }

  /** mode replace, VM shut off: each disk file is kept under its before-restore name, the image takes its place. */
  async function swapInRestoredDisks(vm: string, plan: RestorePlan): Promise<string[]> {
    return withHypervisor(async (ssh, driver) => {
      const state = await driver.state(vm);
      if (state.state !== 'shut-off')
        throw ApplicationFailure.retryable(`${vm} is ${state.detail}, not shut off`, 'VmNotShutOff');
      const kept: string[] = [];
      for (const t of plan.targets) {
        if (await swapInDisk(ssh, { pushed: t.pushPath, final: t.finalPath!, keep: t.keepAs! })) kept.push(t.keepAs!);
      }
      return kept;
    });
  }

  /** mode replace, after a failure: the kept disk files go back under their own names. Idempotent. */
  async function putOriginalDisksBack(vm: string, plan: RestorePlan): Promise<void> {
    await withHypervisor(async (ssh, driver) => {
      if ((await driver.state(vm)).state === 'running') await driver.forceOff(vm); // it runs the restored disks
      for (const t of plan.targets) await putDiskBack(ssh, { final: t.finalPath!, keep: t.keepAs! });
    });
  }

  /** Removes what a restore pushed (and its partials), and its folder (mode as, boot tests). */
  async function discardPushed(plan: RestorePlan): Promise<void> {
    await withHypervisor(async (ssh) => {
      const paths = plan.targets.flatMap((t) => [t.pushPath, partialPathOf(t.pushPath)]);
      await ssh.run(['rm', '-f', ...paths]);
      if (plan.dir) await ssh.run(['rm', '-rf', plan.dir]);
    });
  }

  /** Where a boot test's images go: the VM's folder of the image area, removed after the test. */
  async function planBootTest(
    vm: string,
    set: { stamp: string; images: ManifestImage[] },
    testStamp: string,
  ): Promise<RestorePlan> {
    const hv = requireSection(config.hypervisor, 'hypervisor');
    if (unsafeVmNameReason(vm)) throw refuse(`refused VM name ${JSON.stringify(vm)}`, 'BadRequest');
    const dir = `${hv.imageArea}/${vm}/restore-test-${testStamp}`;
    return {
      domain: `cluster-backup-probe-${testStamp.toLowerCase()}`,
      dir,
      wasRunning: false,
      shutdownTimeoutSeconds: 0,
      targets: set.images.map((i) => ({ disk: i.disk, format: i.format, pushPath: `${dir}/${i.file}` })),
    };
  }

  /**
   * Boots the pushed set in isolation (see bootProbe); the throw-away domain and overlays always go. The
   * time limit runs from the first attempt: a retry gets what is left of it, never a new one. Of the console
   * only cleaned lines leave the hypervisor, and only when the test failed.
   */
  async function bootTest(savedXml: string, plan: RestorePlan): Promise<BootTestOutcome> {
    const hv = requireSection(config.hypervisor, 'hypervisor');
    const settings = config.restoreTest;
    let state = 'starting';
    const probe = await withHypervisor((ssh) =>
      whileHeartbeating(
        () => ({ domain: plan.domain, state }),
        () =>
          bootProbe({
            ssh,
            uri: hv.uri,
            savedXml,
            name: plan.domain,
            images: plan.targets.map((t) => ({ target: t.disk, path: t.pushPath, format: t.format })),
            workDir: `${plan.dir}/probe`,
            memoryMiB: settings.memoryMiB,
            timeoutSeconds: settings.timeoutSeconds,
            startedAtMs: bootTestStartedAtMs(),
            pattern: settings.pattern,
            signal: Context.current().cancellationSignal,
            onState: (s) => {
              state = s;
            },
          }),
      ),
    );
    const { passed, detail, bootSeconds } = probe;
    return { passed, detail, bootSeconds, ...(passed ? {} : { console: consoleLines(probe.consoleTail) }) };
  }

  /** The restored domain's state in libvirt's words, for the result and the report. */
  async function restoredDomainState(domain: string): Promise<string> {
    return withHypervisor(async (_ssh, driver) => (await driver.state(domain)).detail);
  }

  function restoreSettings() {
    return {
      storeTaskQueue: storeTaskQueue(config),
      heartbeatTimeoutSeconds: config.transfer.heartbeatTimeoutSeconds,
      bootTimeoutSeconds: config.restoreTest.timeoutSeconds,
    };
  }

  async function getRestoreSettings() {
    return restoreSettings();
  }

  async function sendRestoreReport(request: RestoreReportRequest): Promise<{ subject: string; where: string }> {
    const report = restoreReport({ ...request, link: { ...request.link, uiBaseUrl: config.mail.webUiBaseUrl } });
    const delivery = await new Mailer(config.mail).deliver(report, `${fileStamp(now())}-${request.link.workflowId}`);
    return { subject: report.subject, where: delivery.where };
  }

  return {
    ...createDayRestoreActivities({ config, openSsh, now }),
    readStoredSet,
    pushImage,
    pickVmToTest,
    recordRestoreTest,
    readRestoreTests,
    planRestore,
    defineRestoredVm,
    swapInRestoredDisks,
    putOriginalDisksBack,
    discardPushed,
    planBootTest,
    bootTest,
    getRestoreSettings,
    restoredDomainState,
    sendRestoreReport,
  };
}
