import { Restic } from '../../adapters/restic/restic';
import { ResticImageSets } from '../../adapters/image-sets/restic-image-sets';
import { resticOptions } from '../../activities/services';
import { LocalImageSets, type SetCheck } from '../../adapters/image-sets/local-image-sets';
import { storeFileMode } from '../../adapters/local/file-mode';
import { initStoreRoot } from '../../adapters/local/store-root';
import type { Config } from '../../config/schema';
import { formatBytes } from '../../domain/format';
import { planRetention } from '../../domain/retention';
import { UsageError } from './command-kit';
import { restoreTestLines } from '../../domain/restore';
import { readRestoreTestLog } from './restore';
import { verifyResticStore } from './store-verify-restic';

function storeSection(config: Config): NonNullable<Config['store']> {
  if (!config.store) throw new UsageError('the config has no store section (store.root): no store to look at');
  return config.store;
}

/**
 * Prepares the roots backups are written into (supim.destinationRoot, store.root): creates them if needed
 * and leaves the marker without which runs refuse to write there. Run once, with the backup disk mounted.
 */
export async function initStores(config: Config, print: (line: string) => void) {
  const roots = [config.supim?.destinationRoot, config.store?.root].filter((r): r is string => r !== undefined);
  const mode = storeFileMode(config.permissions);
  const results = [];
  for (const root of new Set(roots)) {
    const result = await initStoreRoot(root, { mode });
    print(`${root}: ${result.change === 'ready' ? 'already initialised' : result.change}`);
    results.push(result);
  }
  if (config.store?.engine === 'restic') {
    const restic = new Restic(resticOptions(config));
    const made = await restic.init();
    print(
      `${restic.repository}: restic repository ${made === 'created' ? 'created (version 2, compressed)' : 'already there'}`,
    );
  }
  return results;
}

/**
 * What the store's retention policy keeps and would delete right now, and why, for every VM (or the named
 * ones); deletes nothing. The weekly run applies the same plan after each verified pull.
 */
export async function previewStoreRetention(config: Config, vms: string[] | undefined, print: (line: string) => void) {
  const { root, retention: policy } = storeSection(config);
  const store = new LocalImageSets(root);
  print(`policy: keep last ${policy.keepLast}, weekly ${policy.keepWeekly}, monthly ${policy.keepMonthly}`);
  const plans = [];
  for (const vm of vms ?? (await store.listVms())) {
    const plan = planRetention(await store.listSets(vm), policy);
    for (const k of plan.keep) print(`${vm}/${k.stamp}: keep (${k.why.join(', ')})`);
    for (const d of plan.delete) print(`${vm}/${d.stamp}: would delete (${d.why})`);
    plans.push({ vm, plan });
  }
  return plans;
}

/**
 * Re-reads every stored set (or the named VMs' sets) and compares it with its manifest, on the backup host
 * alone, without Temporal: a scrub that finds bit rot or a tampered copy before a restore needs it.
 */
export async function verifyStore(
  config: Config,
  vms: string[] | undefined,
  print: (line: string) => void,
  options: { full?: boolean } = {},
) {
  if (storeSection(config).engine === 'restic') {
    if (!vms?.length)
      return { checks: [] as SetCheck[], ...(await verifyResticStore(config, options.full ?? false, print)) };
    if (options.full) throw new UsageError('--full reads the whole repository: give it without --vm');
    // One VM's sets: each disk dumped and compared with the record (the packs' own check is the run without --vm).
    return checkSets(new ResticImageSets(new Restic(resticOptions(config))), vms, print, config);
  }
  if (options.full)
    throw new UsageError('--full is for store.engine restic (the files engine always reads everything)');
  const store = new LocalImageSets(storeSection(config).root);
  return checkSets(store, vms ?? (await store.listVms()), print, config);
}

/** Every set of the VMs re-read and compared with its manifest. */
async function checkSets(
  store: LocalImageSets | ResticImageSets,
  vms: string[],
  print: (line: string) => void,
  config: Config,
) {
  const checks: SetCheck[] = [];
  for (const vm of vms) {
    const sets = await store.listSets(vm);
    if (sets.length === 0) print(`${vm}: no stored sets`);
    for (const { stamp } of sets) {
      const check = await store.checkSet(vm, stamp);
      checks.push(check);
      print(describe(check));
    }
  }
  // Whether the newest sets also boot (the weekly restore test): a hash cannot tell.
  for (const line of restoreTestLines(await readRestoreTestLog(config))) print(line);
  const damaged = checks.filter((c) => c.state === 'damaged').length;
  const ok = checks.filter((c) => c.state === 'ok').length;
  print(`${ok} set(s) ok, ${damaged} damaged, ${checks.length - ok - damaged} unverified (never completed)`);
  return { checks, ok: damaged === 0 };
}

function describe(check: SetCheck): string {
  const name = `${check.vm}/${check.stamp}`;
  switch (check.state) {
    case 'ok':
      return `${name}: ok (${check.images} image(s), ${formatBytes(check.bytes)}, SHA-256 as in the manifest)`;
    case 'unverified':
      return `${name}: unverified (no manifest: its pull did not complete; removed once a newer set is verified)`;
    case 'damaged':
      return `${name}: DAMAGED: ${check.problems.join('; ')}`;
  }
}
