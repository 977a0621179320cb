import { resticOptions } from '../../activities/services';
import { storeFileMode } from '../../adapters/local/file-mode';
import type { RepositoryNumbers } from '../../adapters/restic/repository-stats';
import type { RepositoryCheck } from '../../adapters/restic/repository-verify';
import { Restic } from '../../adapters/restic/restic';
import { verifyRotating, type RotatingVerify } from '../../adapters/restic/rotating-verify';
import type { Config } from '../../config/schema';
import { formatBytes } from '../../domain/format';

const percent = (fraction: number) => `${(fraction * 100).toFixed(1)}%`;

/**
 * `store verify` on store.engine restic: `restic check` of the structure, plus the next data subset n/N
 * of the rotation (store.restic.verifySubsets), or every pack with `full`; damaged packs are named with
 * the sets (vm/stamp, disk) they break.
 */
export async function verifyResticStore(config: Config, full: boolean, print: (line: string) => void) {
  const store = config.store!;
  const restic = new Restic(resticOptions(config));
  const result = await verifyRotating({
    restic,
    storeRoot: store.root,
    subsets: store.restic!.verifySubsets,
    mode: storeFileMode(config.permissions),
    full,
  });
  for (const line of describeResticVerify(restic.repository, result)) print(line);
  return { ok: result.check.ok, restic: jsonOf(result) };
}

function scopeText(check: RepositoryCheck): string {
  return check.scope === 'full' ? 'all data (--read-data)' : `data subset ${check.scope.subset}/${check.scope.of}`;
}

export function describeResticVerify(repository: string, { check, state, coverage }: RotatingVerify): string[] {
  const packs = check.packsRead !== undefined ? ` (${check.packsRead} of ${check.packsTotal} packs)` : '';
  const lines = [
    `${repository}: ${check.ok ? 'ok' : 'DAMAGED'}: structure checked, ${scopeText(check)} read${packs}`,
    `this period (since ${state.periodStartedAt ?? '-'}): ${new Set(state.read.map((r) => r.subset)).size} of ` +
      `${state.subsets} subsets read, ${percent(coverage.fraction)} of the data ` +
      `(${formatBytes(coverage.readBytes)} of ${formatBytes(coverage.totalBytes)}); next: subset ${state.next}/${state.subsets}`,
  ];
  for (const d of check.damaged) {
    lines.push(`DAMAGED pack ${d.pack}`);
    if (d.sets.length === 0)
      lines.push(
        '  holds no file data of a set (tree or metadata pack): the structure errors above name what it breaks',
      );
    for (const s of d.sets) lines.push(`  breaks ${s.vm}/${s.stamp} ${s.disk} (snapshot ${s.snapshot.slice(0, 8)})`);
  }
  if (!check.ok && check.damaged.length === 0) lines.push('restic check found errors:');
  if (!check.ok) lines.push(...check.outputTail.split('\n').map((l) => `  | ${l}`));
  return lines;
}

function jsonOf({ check, state, coverage }: RotatingVerify) {
  return {
    ok: check.ok,
    read: check.scope === 'full' ? 'full' : `${check.scope.subset}/${check.scope.of}`,
    packsRead: check.packsRead,
    packsTotal: check.packsTotal,
    damaged: check.damaged,
    period: {
      startedAt: state.periodStartedAt,
      subsets: state.subsets,
      subsetsRead: [...new Set(state.read.map((r) => r.subset))].sort((a, b) => a - b),
      coverage: coverage.fraction,
      readBytes: coverage.readBytes,
      totalBytes: coverage.totalBytes,
    },
    next: `${state.next}/${state.subsets}`,
    ...(check.ok ? {} : { output: check.outputTail }),
  };
}

/** The repository's numbers as `status` prints them. */
export function describeRepositoryNumbers(n: RepositoryNumbers): string[] {
  const last = n.verify.lastCheck;
  return [
    `restic repository ${n.repository}: ${n.snapshots} snapshot(s), ${formatBytes(n.restoreBytes)} of sets stored in ` +
      `${formatBytes(n.storedBytes)} (${n.packs} packs, ${formatBytes(n.packBytes)} on disk), dedup ratio ` +
      `${n.dedupRatio.toFixed(2)}`,
    `  store verify: ${last ? `last ${last.at} (${last.what}): ${last.ok ? 'ok' : `DAMAGED (${last.damagedPacks.length} pack(s))`}` : 'never run'}; ` +
      `this period ${n.verify.subsetsRead} of ${n.verify.subsets} subsets, ${percent(n.verify.coverage)} of the data; ` +
      `next subset ${n.verify.next}/${n.verify.subsets}`,
  ];
}
