import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { hypervisorTaskQueues, storeTaskQueue } from '../adapters/temporal/temporal-connection';
import { fileStamp } from '../domain/format';
import type { RestoreNetwork } from '../domain/restore';
import { restoreReport, type RestoreReportRequest } from '../domain/restore-report';
import { arrivalPath, type BootTestOutcome, type RestorePlan, type RestoreTarget } from '../domain/restore-plan';
import { unsafeVmNameReason } from '../domain/vm-names';
import { consoleLines } from '../domain/console-tail';
import { bootProbe } from '../adapters/hypervisor/boot-probe';
import {
  consoleFiles,
  type RestoredDomain,
  restoredDomainXml,
  RestoreXmlError,
} from '../adapters/hypervisor/restore-xml';
import type { ManifestImage } from '../domain/image-set';
import { partialPathOf } from '../adapters/transfer/stream-upload';
import { refuse } from './failures';
import { whileHeartbeating } from './heartbeat';
import type { HypervisorSession } from './hypervisor-session';
import type { RestoreDeps } from './restore-store';

/**
 * When the running boot test's time limit started: when its FIRST attempt was scheduled (Temporal keeps
 * scheduledTimestampMs across retries; currentAttemptScheduledTimestampMs is this attempt's), so a retry
 * gets what is left of the limit, never a new one.
 */
export function bootTestStartedAtMs(): number {
  return Context.current().info.scheduledTimestampMs;
}

export { RESTORE_STORE_ACTIVITIES, type RestoreDeps } from './restore-store';

/**
 * The restore activities of the main task queue: they talk to the hypervisor (plan, define, swap, put
 * back, discard, boot test) or to nobody (settings, the report). Any worker takes them.
 */
export function createRestoreHypervisorActivities({ config, services, now = () => new Date() }: RestoreDeps) {
  const withHypervisor = <T>(use: (session: HypervisorSession) => Promise<T>): Promise<T> =>
    services.hypervisors.open(use);

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
    return withHypervisor(async ({ hv, driver }) => {
      const { shutdownTimeoutSeconds } = services.vmPolicy(hv.host, vm);
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
        // A restic set holds raw bytes: converted on the hypervisor into the disk's own format.
        const converted = disk.format !== image.format && image.format === 'raw' && image.restic !== undefined;
        if (converted)
          return {
            disk: image.disk,
            format: disk.format,
            arrivesAs: 'raw',
            pushPath: `${disk.source}.restored-${set.stamp}`,
            finalPath: disk.source,
            keepAs: `${disk.source}.before-restore-${options.restoreStamp}`,
          };
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
    await withHypervisor(async ({ driver, disks }) => {
      if ((await driver.state(plan.domain)).state !== 'missing') {
        if ((await driver.uuid(plan.domain)) === uuid) return;
        throw refuse(
          `a domain named ${JSON.stringify(plan.domain)} appeared meanwhile; not touched`,
          'RestoreNameExists',
        );
      }
      // Its consoles are created here, 0600, before QEMU writes to them (libvirt gives them to its user).
      await disks.createPrivateFiles(consoleFiles(copy.xml));
      await driver.define(copy.xml);
    });
    return copy.removed;
  }

  /** mode replace, VM shut off: each disk file is kept under its before-restore name, the image takes its place. */
  async function swapInRestoredDisks(vm: string, plan: RestorePlan): Promise<string[]> {
    return withHypervisor(async ({ driver, disks }) => {
      const state = await driver.state(vm);
      if (state.state !== 'shut-off')
        throw ApplicationFailure.retryable(`${vm} is ${state.detail}, not shut off`, 'VmNotShutOff');
      const kept: string[] = [];
      for (const t of plan.targets) {
        if (await disks.swapIn({ pushed: t.pushPath, final: t.finalPath!, keep: t.keepAs! })) kept.push(t.keepAs!);
      }
      return kept;
    });
  }

  /** mode replace, after a failure: the kept disk files go back under their own names. Idempotent. */
  async function putOriginalDisksBack(vm: string, plan: RestorePlan): Promise<void> {
    await withHypervisor(async ({ driver, disks }) => {
      if ((await driver.state(vm)).state === 'running') await driver.forceOff(vm); // it runs the restored disks
      for (const t of plan.targets) await disks.putBack({ final: t.finalPath!, keep: t.keepAs! });
    });
  }

  /** Removes what a restore pushed (and its partials), and its folder (mode as, boot tests). */
  async function discardPushed(plan: RestorePlan): Promise<void> {
    await withHypervisor(async ({ disks }) => {
      const paths = plan.targets.flatMap((t) => {
        const arrived = arrivalPath(t);
        return [
          t.pushPath,
          partialPathOf(t.pushPath),
          ...(arrived !== t.pushPath ? [arrived, partialPathOf(arrived)] : []),
        ];
      });
      await disks.discard(paths, plan.dir);
    });
  }

  /** Where a boot test's images go: the VM's folder of the image area, removed after the test. */
  async function planBootTest(
    vm: string,
    set: { stamp: string; images: ManifestImage[] },
    testStamp: string,
  ): Promise<RestorePlan> {
    const hv = services.hypervisors.hv;
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
    const settings = config.restoreTest;
    let state = 'starting';
    const probe = await withHypervisor(({ ssh, driver }) =>
      whileHeartbeating(
        () => ({ domain: plan.domain, state }),
        () =>
          bootProbe({
            ssh,
            driver,
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
    return withHypervisor(async ({ driver }) => (await driver.state(domain)).detail);
  }

  function restoreSettings(hypervisor?: string) {
    const common = {
      heartbeatTimeoutSeconds: config.transfer.heartbeatTimeoutSeconds,
      bootTimeoutSeconds: config.restoreTest.timeoutSeconds,
    };
    if (hypervisor === undefined) return { storeTaskQueue: storeTaskQueue(config), ...common };
    if (!config.hypervisors.some((h) => h.name === hypervisor)) {
      const known = config.hypervisors.map((h) => h.name).join(', ') || 'none';
      throw refuse(`no hypervisor ${JSON.stringify(hypervisor)} in config (have: ${known})`, 'UnknownHypervisor');
    }
    // That hypervisor's queues: its workers' activities reach it, and push the set to it.
    const queues = hypervisorTaskQueues(config, hypervisor);
    return { storeTaskQueue: queues.store, taskQueue: queues.remote, ...common };
  }

  async function getRestoreSettings(hypervisor?: string) {
    return restoreSettings(hypervisor);
  }

  async function sendRestoreReport(request: RestoreReportRequest): Promise<{ subject: string; where: string }> {
    const report = restoreReport({ ...request, link: { ...request.link, uiBaseUrl: config.mail.webUiBaseUrl } });
    const delivery = await services.mailer.deliver(report, `${fileStamp(now())}-${request.link.workflowId}`);
    return { subject: report.subject, where: delivery.where };
  }

  return {
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
