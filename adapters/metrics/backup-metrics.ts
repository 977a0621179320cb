/**
 * Backup metrics for alerting, served with the Temporal SDK's own on the worker's Prometheus endpoint
 * (worker.metricsBindAddress). Gauges only: each says how things stand now (last run, last success,
 * sizes), so a restarted worker shows the right values as soon as it has read the last runs back from
 * Temporal (refreshFromTemporal), and several workers agree. The job is the label `backup` (daily,
 * weekly): Prometheus keeps `job` for its scrape job and would rename ours.
 */
import type { Client } from '@temporalio/client';
import { noopMetricMeter, type MetricGauge, type MetricMeter } from '@temporalio/common';
import type { Config } from '../../config/schema';
import type { DailySummary } from '../../domain/daily-summary';
import { JOBS, type Job } from '../../domain/jobs';
import type { RunOutcome } from '../../domain/run-outcome';
import { leftToAnotherRun, outcomeResult } from '../../domain/report-trend';
import type { StoreUsage } from '../../domain/store-usage';
import type { WeeklySummary } from '../../domain/weekly-summary';
import { measureStores } from '../image-sets/store-usage';
import { repositoryNumbers, type RepositoryNumbers } from '../restic/repository-stats';
import { Restic } from '../restic/restic';
import { readOffsiteFreshness } from '../restic/offsite-freshness';
import type { OffsiteFreshness } from '../../domain/offsite';
import { resticEnvOf } from '../restic/restic-config';
import { pastRuns } from '../temporal/past-runs';

const RESULTS = ['ok', 'incomplete', 'failed', 'cancelled'] as const;
/** How far back a refresh looks for the last good run (like the watchdog). */
const LOOK_AT = 50;
/** The restic repository's numbers are read at most this often (restic stats walks every snapshot's trees). */
const REPOSITORY_EVERY_MS = 15 * 60_000;

export type JobOutcome =
  { job: 'daily'; outcome: RunOutcome<DailySummary> } | { job: 'weekly'; outcome: RunOutcome<WeeklySummary> };

export class BackupMetrics {
  private readonly lastRun: MetricGauge;
  private readonly lastResult: MetricGauge;
  private readonly lastSuccess: MetricGauge;
  private readonly dailyBytes: MetricGauge;
  private readonly dailyFiles: MetricGauge;
  private readonly vmDowntime: MetricGauge;
  private readonly vmImageBytes: MetricGauge;
  private readonly vmsHeldDown: MetricGauge;
  private readonly imageAreaFree: MetricGauge;
  private readonly storeFree: MetricGauge;
  private readonly storeSize: MetricGauge;
  private readonly repo: Record<
    'stored' | 'packs' | 'restore' | 'dedup' | 'lastCheck' | 'lastCheckOk' | 'coverage',
    MetricGauge
  >;
  private readonly offsiteNewest: MetricGauge;
  private readonly offsiteReadable: MetricGauge;
  private readonly offsiteBehind: MetricGauge;
  private readonly offsiteLag: MetricGauge;
  private readonly offsiteCheckOk: MetricGauge;
  private readonly offsiteCheckAt: MetricGauge;
  /** When the restic numbers were last collected (two restic stats runs: not every minute). */
  private repoReadAt = 0;
  /** Epoch ms of what the gauges show, per job: an older run read later never overwrites a newer one. */
  private readonly shownRun: Partial<Record<Job, number>> = {};
  private readonly shownSuccess: Partial<Record<Job, number>> = {};

  constructor(meter: MetricMeter) {
    const gauge = (name: string, unit: string, description: string, type: 'int' | 'float' = 'int') =>
      meter.createGauge(`cluster_backup_${name}`, type, unit, description);
    this.lastRun = gauge('last_run_timestamp_seconds', 's', 'When the last run of the job ended (reported).');
    this.lastResult = gauge(
      'last_run_result',
      '',
      'Result of the last run of the job: 1 on the result label (ok, incomplete, failed, cancelled), 0 on the others.',
    );
    this.lastSuccess = gauge('last_success_timestamp_seconds', 's', 'When the last run with result ok ended.');
    this.dailyBytes = gauge('daily_last_run_copied_bytes', 'By', 'Bytes copied by the last daily run (all its days).');
    this.dailyFiles = gauge('daily_last_run_copied_files', '', 'Files copied by the last daily run.');
    this.vmDowntime = gauge(
      'vm_downtime_seconds',
      's',
      'Downtime of the VM in the last weekly run (labels vm, hypervisor).',
      'float',
    );
    this.vmImageBytes = gauge(
      'vm_image_bytes',
      'By',
      'Size of the VM image set taken by the last weekly run (labels vm, hypervisor).',
    );
    this.vmsHeldDown = gauge('vms_held_down', '', 'VMs stopped by a run and not yet running again (label hypervisor).');
    this.imageAreaFree = gauge(
      'image_area_free_bytes',
      'By',
      "Free bytes in the hypervisor's image area after the last weekly run (label hypervisor).",
    );
    this.storeFree = gauge(
      'store_free_bytes',
      'By',
      'Free bytes of the backup store file system (store: daily, images).',
    );
    this.storeSize = gauge('store_size_bytes', 'By', 'Size of the backup store file system (store: daily, images).');
    this.offsiteNewest = gauge(
      'offsite_newest_snapshot_timestamp_seconds',
      's',
      'The newest snapshot in the off-site repository (label offsite); its lag is time() minus this.',
    );
    this.offsiteReadable = gauge(
      'offsite_readable',
      '',
      '1 if the off-site repository could be read (label offsite), 0 if not.',
    );
    this.offsiteBehind = gauge(
      'offsite_behind',
      '',
      'Sets and SUPIM days (label kind: set, day) in the primary repository not yet copied off-site (label offsite).',
    );
    this.offsiteLag = gauge(
      'offsite_lag_seconds',
      's',
      'How long the oldest snapshot not yet copied off-site (label offsite) has waited; 0 when none.',
    );
    this.offsiteCheckOk = gauge(
      'offsite_last_check_ok',
      '',
      '1 if the last restic check in the off-site repository (label offsite, after a copy) passed, 0 if it found damage.',
    );
    this.offsiteCheckAt = gauge(
      'offsite_last_check_timestamp_seconds',
      's',
      'When the last restic check in the off-site repository (label offsite) began.',
    );
    this.repo = {
      stored: gauge('restic_stored_bytes', 'By', 'restic stats --mode raw-data: the stored (deduplicated) bytes.'),
      packs: gauge('restic_pack_bytes', 'By', "The restic repository's pack files on disk."),
      restore: gauge('restic_restore_bytes', 'By', 'restic stats --mode restore-size: the raw bytes of all sets.'),
      dedup: gauge('restic_dedup_ratio', '', 'Raw bytes of all sets per stored byte.', 'float'),
      lastCheck: gauge('restic_last_check_timestamp_seconds', 's', 'When the last store verify (restic check) began.'),
      lastCheckOk: gauge('restic_last_check_ok', '', '1 if the last store verify found no damage, 0 if it did.'),
      coverage: gauge(
        'restic_check_coverage_ratio',
        '',
        'Share of the repository data that store verify read this period (one pass over subsets 1..N).',
        'float',
      ),
    };
  }

  setRepositoryNumbers(n: RepositoryNumbers): void {
    this.repo.stored.set(n.storedBytes);
    this.repo.packs.set(n.packBytes);
    this.repo.restore.set(n.restoreBytes);
    this.repo.dedup.set(n.dedupRatio);
    this.repo.coverage.set(n.verify.coverage);
    const last = n.verify.lastCheck;
    if (last) {
      this.repo.lastCheck.set(Math.floor(Date.parse(last.at) / 1000));
      this.repo.lastCheckOk.set(last.ok ? 1 : 0);
    }
  }

  setOffsiteFreshness(all: readonly OffsiteFreshness[]): void {
    for (const f of all) {
      this.offsiteReadable.set(f.reason && !f.newest ? 0 : 1, { offsite: f.repository });
      if (f.newest) this.offsiteNewest.set(Math.floor(Date.parse(f.newest) / 1000), { offsite: f.repository });
      if (f.lag) {
        this.offsiteBehind.set(f.lag.behindSets.length, { offsite: f.repository, kind: 'set' });
        this.offsiteBehind.set(f.lag.behindDays.length, { offsite: f.repository, kind: 'day' });
        this.offsiteLag.set(Math.round(f.lag.lagHours * 3600), { offsite: f.repository });
      }
      if (f.lastCheck) {
        this.offsiteCheckOk.set(f.lastCheck.ok ? 1 : 0, { offsite: f.repository });
        this.offsiteCheckAt.set(Math.floor(Date.parse(f.lastCheck.at) / 1000), { offsite: f.repository });
      }
    }
  }

  /** A run's outcome as its report saw it, at `at` (the report's time, or the run's close time). */
  recordRun({ job, outcome }: JobOutcome, at: Date): void {
    if (leftToAnotherRun(outcome)) return; // says nothing about the backups: the other run will
    const result = outcomeResult(outcome);
    if (result === 'ok') this.recordSuccess(job, at);
    if ((this.shownRun[job] ?? 0) > at.getTime()) return;
    this.shownRun[job] = at.getTime();
    this.lastRun.set(Math.floor(at.getTime() / 1000), { backup: job });
    for (const r of RESULTS) this.lastResult.set(r === result ? 1 : 0, { backup: job, result: r });
    if (job === 'daily') {
      const days = outcome.summary?.days ?? [];
      if (!outcome.summary) return;
      this.dailyBytes.set(days.reduce((s, d) => s + d.bytesCopied, 0));
      this.dailyFiles.set(days.reduce((s, d) => s + d.filesCopied, 0));
      return;
    }
    const vms = outcome.summary?.vms ?? [];
    for (const v of vms) {
      const labels = { vm: v.vm, ...onHypervisor(v.hypervisor) };
      if (v.downtimeMs !== undefined) this.vmDowntime.set(v.downtimeMs / 1000, labels);
      if (v.images.length)
        this.vmImageBytes.set(
          v.images.reduce((s, i) => s + i.bytes, 0),
          labels,
        );
    }
    // Per hypervisor (each has its own image area); runs before several hypervisors: one, unlabelled.
    for (const hypervisor of new Set(vms.map((v) => v.hypervisor))) {
      const free = vms
        .filter((v) => v.hypervisor === hypervisor)
        .map((v) => v.imageAreaFreeAfter ?? v.imageAreaFreeBefore)
        .filter((f) => f !== undefined);
      if (free.length) this.imageAreaFree.set(Math.min(...free), onHypervisor(hypervisor));
    }
  }

  recordSuccess(job: Job, at: Date): void {
    if ((this.shownSuccess[job] ?? 0) > at.getTime()) return;
    this.shownSuccess[job] = at.getTime();
    this.lastSuccess.set(Math.floor(at.getTime() / 1000), { backup: job });
  }

  /** How many VMs are stopped by a run and not running again (the hypervisor's held-down records). */
  setVmsHeldDown(count: number, hypervisor?: string): void {
    this.vmsHeldDown.set(count, onHypervisor(hypervisor));
  }

  setStoreUsage(usages: readonly StoreUsage[]): void {
    for (const usage of usages) {
      for (const store of usage.stores) {
        this.storeFree.set(usage.freeBytes, { store });
        this.storeSize.set(usage.totalBytes, { store });
      }
    }
  }

  /** Reads the last runs of each job back from Temporal (after a restart, or a run another worker reported). */
  async refreshFromTemporal(client: Client): Promise<void> {
    for (const job of JOBS) {
      let looked = 0;
      let newest = true;
      for await (const run of pastRuns(client, job)) {
        if (leftToAnotherRun(run.outcome)) continue;
        const jobOutcome = { job, outcome: run.outcome } as JobOutcome;
        if (newest) this.recordRun(jobOutcome, run.closedAt);
        newest = false;
        if (outcomeResult(run.outcome) === 'ok') {
          this.recordSuccess(job, run.closedAt);
          break;
        }
        if (++looked >= LOOK_AT) break;
      }
    }
  }

  async refreshStores(config: Config): Promise<void> {
    this.setStoreUsage(await measureStores(config));
    const env = resticEnvOf(config.store);
    if (!config.worker.storeHost || !env || !config.store?.restic) return;
    if (Date.now() - this.repoReadAt < REPOSITORY_EVERY_MS) return;
    this.repoReadAt = Date.now();
    const numbers = await repositoryNumbers(new Restic(env), config.store.root, config.store.restic.verifySubsets);
    this.setRepositoryNumbers(numbers);
    if (Object.keys(config.offsite).length) this.setOffsiteFreshness(await readOffsiteFreshness(config, new Date()));
  }
}

let installed: BackupMetrics | undefined;
const noop = new BackupMetrics(noopMetricMeter);

/** The worker process's metrics, once `installBackupMetrics` has run; a no-op before (tests, CLI). */
export function backupMetrics(): BackupMetrics {
  return installed ?? noop;
}

export function installBackupMetrics(meter: MetricMeter): BackupMetrics {
  installed ??= new BackupMetrics(meter);
  return installed;
}

/** For the held-down records on a hypervisor: call with the count whenever it is read or changes. */
export function setVmsHeldDown(count: number, hypervisor?: string): void {
  backupMetrics().setVmsHeldDown(count, hypervisor);
}

/** The `hypervisor` label, where the VM's host is known. */
function onHypervisor(hypervisor: string | undefined): { hypervisor?: string } {
  return hypervisor !== undefined ? { hypervisor } : {};
}
