import { CancellationScope, setCurrentDetails, workflowInfo } from '@temporalio/workflow';
import type { RestorePlan } from '../domain/restore-plan';
import type { RestoreTestResult, RestoreTestSummary } from '../domain/restore';
import { imageStamp } from '../domain/weekly-summary';
import { failureText } from './failure-text';
import { getRestoreSettings, reportRestore, restoreActivities } from './restore-activities';
import { fromOffsite } from './restore-from';

export interface RestoreTestInput {
  /** Test this VM's newest set; default: the VM whose last test is the oldest (never tested first). */
  vm?: string;
  /** Boot the set from this off-site repository (a key of config `offsite`) instead of the primary store. */
  offsite?: string;
}

/**
 * Proof that a backup boots: the newest stored set of one VM is pushed to the hypervisor (SHA-256 checked
 * on arrival) and booted as a throw-away domain on overlays, without network, with capped memory and a
 * time limit; it passes when libvirt says running and the serial console shows the configured line. The
 * pushed copy, the overlays and the domain are removed on every way out; the result is kept in the store
 * (for the rotation, `status` and `store verify`) and reported.
 */
export async function restoreTest(input: RestoreTestInput = {}): Promise<RestoreTestSummary> {
  const startedAt = new Date().toISOString();
  const testStamp = imageStamp(workflowInfo().startTime);
  const settings = await getRestoreSettings();
  const summary: RestoreTestSummary = { ok: false, startedAt, finishedAt: startedAt };
  const vm = input.vm ?? (await restoreActivities(settings, 'restore test').storeQuick.pickVmToTest());
  try {
    if (!vm) {
      summary.ok = true;
      summary.nothingToTest = true;
      return summary;
    }
    const { quick, storeQuick, storeLong, boot, forever } = restoreActivities(settings, `restore test ${vm}`);
    const set = await storeQuick.readStoredSet(vm, undefined, ...fromOffsite(input.offsite));
    const result: RestoreTestResult = {
      vm,
      stamp: set.stamp,
      passed: false,
      detail: '',
      testedAt: startedAt,
      ...(input.offsite ? { offsite: input.offsite } : {}),
    };
    let plan: RestorePlan | undefined;
    try {
      if (!set.domainXml) throw new Error(`set ${set.stamp} has no saved domain definition to boot`);
      const planned = await quick.planBootTest(vm, set, testStamp);
      plan = planned;
      setCurrentDetails(`${vm}/${set.stamp}: pushing`);
      for (const image of set.images) {
        const target = planned.targets.find((t) => t.disk === image.disk)!;
        await storeLong.pushImage(vm, set.stamp, image, target, ...fromOffsite(input.offsite));
      }
      setCurrentDetails(`${vm}/${set.stamp}: booting`);
      const probe = await boot.bootTest(set.domainXml, planned);
      result.passed = probe.passed;
      result.detail = probe.detail;
      result.bootSeconds = probe.bootSeconds;
      if (probe.console) result.console = probe.console;
    } catch (err) {
      result.detail = failureText(err);
    } finally {
      const done = plan;
      if (done) await CancellationScope.nonCancellable(() => forever.discardPushed(done));
    }
    await CancellationScope.nonCancellable(() => storeQuick.recordRestoreTest(result));
    summary.result = result;
    summary.ok = result.passed;
    return summary;
  } finally {
    summary.finishedAt = new Date().toISOString();
    await reportRestore({ kind: 'test', result: summary });
  }
}
