import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Runtime } from '@temporalio/worker';
import { installBackupMetrics, setVmsHeldDown, type BackupMetrics } from '../../adapters/metrics/backup-metrics';
import { freePort } from '../../scripts/sandbox/processes';
import { metricValue } from '../helpers/prometheus';
import { sampleDaily, sampleStores, sampleWeekly } from '../helpers/report-samples';
import { vmResult } from '../helpers/vm-result';

describe('backup metrics on the Prometheus endpoint of the SDK runtime', () => {
  let url: string;
  let metrics: BackupMetrics;
  const scrape = async () => (await fetch(url)).text();

  before(async () => {
    const port = await freePort();
    Runtime.install({ telemetryOptions: { metrics: { prometheus: { bindAddress: `127.0.0.1:${port}` } } } });
    metrics = installBackupMetrics(Runtime.instance().metricMeter);
    url = `http://127.0.0.1:${port}/metrics`;
  });
  after(async () => {
    await Runtime.instance().shutdown();
  });

  it('shows the restic repository numbers and the last store verify', async () => {
    metrics.setRepositoryNumbers({
      repository: '/store/restic',
      storedBytes: 1000,
      packBytes: 1100,
      packs: 3,
      restoreBytes: 2500,
      snapshots: 4,
      dedupRatio: 2.5,
      verify: {
        subsets: 52,
        next: 4,
        subsetsRead: 3,
        coverage: 0.0625,
        lastCheck: { at: '2026-12-02T10:00:00.000Z', what: 'subset 3/52', ok: false, damagedPacks: ['ab'] },
      },
    });
    const body = await scrape();
    assert.equal(metricValue(body, 'cluster_backup_restic_stored_bytes'), 1000);
    assert.equal(metricValue(body, 'cluster_backup_restic_pack_bytes'), 1100);
    assert.equal(metricValue(body, 'cluster_backup_restic_restore_bytes'), 2500);
    assert.equal(metricValue(body, 'cluster_backup_restic_dedup_ratio'), 2.5);
    assert.equal(metricValue(body, 'cluster_backup_restic_check_coverage_ratio'), 0.0625);
    assert.equal(metricValue(body, 'cluster_backup_restic_last_check_ok'), 0);
    assert.equal(
      metricValue(body, 'cluster_backup_restic_last_check_timestamp_seconds'),
      Date.parse('2026-12-02T10:00:00Z') / 1000,
    );
  });

  it('shows each off-site repository: its newest snapshot, and whether it could be read', async () => {
    metrics.setOffsiteFreshness([
      {
        repository: 'far',
        newest: '2026-12-07T05:41:00.000Z',
        ageHours: 3,
        maxAgeHours: 192,
        stale: false,
        lag: { behindSets: ['db/20261207T050000Z'], behindDays: [], lagHours: 2.5, newestSets: {} },
        lastCheck: { at: '2026-12-07T06:00:00.000Z', what: 'structure + subset 1/12', ok: false, damagedPacks: ['ab'] },
      },
      { repository: 'down', maxAgeHours: 192, stale: true, reason: 'connection refused' },
    ]);
    const body = await scrape();
    assert.equal(
      metricValue(body, 'cluster_backup_offsite_newest_snapshot_timestamp_seconds', { offsite: 'far' }),
      Date.parse('2026-12-07T05:41:00Z') / 1000,
    );
    assert.equal(metricValue(body, 'cluster_backup_offsite_readable', { offsite: 'far' }), 1);
    assert.equal(metricValue(body, 'cluster_backup_offsite_readable', { offsite: 'down' }), 0);
    assert.equal(metricValue(body, 'cluster_backup_offsite_behind', { offsite: 'far', kind: 'set' }), 1);
    assert.equal(metricValue(body, 'cluster_backup_offsite_behind', { offsite: 'far', kind: 'day' }), 0);
    assert.equal(metricValue(body, 'cluster_backup_offsite_lag_seconds', { offsite: 'far' }), 9000);
    assert.equal(metricValue(body, 'cluster_backup_offsite_last_check_ok', { offsite: 'far' }), 0);
    assert.equal(
      metricValue(body, 'cluster_backup_offsite_last_check_timestamp_seconds', { offsite: 'far' }),
      Date.parse('2026-12-07T06:00:00Z') / 1000,
    );
    assert.equal(
      metricValue(body, 'cluster_backup_offsite_newest_snapshot_timestamp_seconds', { offsite: 'down' }),
      undefined,
    );
  });

  it('shows the last weekly run per VM, the image area, the store and the VMs held down', async () => {
    const reportedAt = new Date('2026-11-29T05:41:00Z');
    metrics.recordRun({ job: 'weekly', outcome: sampleWeekly() }, reportedAt);
    metrics.setStoreUsage(sampleStores());
    setVmsHeldDown(2);
    const body = await scrape();
    assert.equal(metricValue(body, 'cluster_backup_vm_downtime_seconds', { vm: 'db' }), 94.3);
    assert.equal(metricValue(body, 'cluster_backup_vm_downtime_seconds', { vm: 'license-server' }), 132.9);
    assert.equal(metricValue(body, 'cluster_backup_vm_image_bytes', { vm: 'web' }), Math.round(6.2 * 1024 ** 3));
    assert.equal(metricValue(body, 'cluster_backup_vm_image_bytes', { vm: 'license-server' }), undefined);
    assert.equal(metricValue(body, 'cluster_backup_image_area_free_bytes'), 391 * 1024 ** 3);
    assert.equal(metricValue(body, 'cluster_backup_last_run_result', { backup: 'weekly', result: 'incomplete' }), 1);
    assert.equal(metricValue(body, 'cluster_backup_last_run_result', { backup: 'weekly', result: 'ok' }), 0);
    assert.equal(
      metricValue(body, 'cluster_backup_last_run_timestamp_seconds', { backup: 'weekly' }),
      reportedAt.getTime() / 1000,
    );
    assert.equal(metricValue(body, 'cluster_backup_last_success_timestamp_seconds', { backup: 'weekly' }), undefined);
    assert.equal(metricValue(body, 'cluster_backup_vms_held_down'), 2);
    assert.equal(metricValue(body, 'cluster_backup_store_size_bytes', { store: 'images' }), 8 * 1024 ** 4);
    assert.equal(
      metricValue(body, 'cluster_backup_store_free_bytes', { store: 'daily' }),
      Math.round(2.08 * 1024 ** 4),
    );
  });

  it('keeps the newest run: an older one read back later changes nothing but an older success', async () => {
    const good = sampleDaily();
    const days = good.summary!.days.map((d) => ({ ...d, status: 'copied' as const }));
    const ok = { state: 'completed' as const, summary: { ...good.summary!, days, ok: true } };
    metrics.recordRun({ job: 'daily', outcome: sampleDaily() }, new Date('2026-11-27T06:21:40Z'));
    metrics.recordRun({ job: 'daily', outcome: ok }, new Date('2026-11-26T06:10:00Z'));
    const body = await scrape();
    assert.equal(metricValue(body, 'cluster_backup_last_run_result', { backup: 'daily', result: 'incomplete' }), 1);
    assert.equal(
      metricValue(body, 'cluster_backup_last_run_timestamp_seconds', { backup: 'daily' }),
      Date.parse('2026-11-27T06:21:40Z') / 1000,
    );
    assert.equal(
      metricValue(body, 'cluster_backup_last_success_timestamp_seconds', { backup: 'daily' }),
      Date.parse('2026-11-26T06:10:00Z') / 1000,
    );
    assert.equal(metricValue(body, 'cluster_backup_daily_last_run_copied_bytes'), Math.round(15.2 * 1024 ** 3));
  });

  it('labels each VM and image area with its hypervisor (runs since several hypervisors), and held-down counts per host', async () => {
    const weekly = sampleWeekly();
    const on = (hypervisor: string, vm: string, free: number, downtimeMs: number) =>
      vmResult(vm, { hypervisor, downtimeMs, imageAreaFreeBefore: free + 1, imageAreaFreeAfter: free });
    weekly.summary!.vms = [on('hv-a', 'db', 500, 1000), on('hv-a', 'web', 300, 2000), on('hv-b', 'db', 700, 3000)];
    metrics.recordRun({ job: 'weekly', outcome: weekly }, new Date('2026-12-06T05:41:00Z'));
    setVmsHeldDown(1, 'hv-b');
    setVmsHeldDown(0, 'hv-a');
    const body = await scrape();
    assert.equal(metricValue(body, 'cluster_backup_vm_downtime_seconds', { vm: 'db', hypervisor: 'hv-a' }), 1);
    assert.equal(metricValue(body, 'cluster_backup_vm_downtime_seconds', { vm: 'db', hypervisor: 'hv-b' }), 3);
    assert.equal(metricValue(body, 'cluster_backup_image_area_free_bytes', { hypervisor: 'hv-a' }), 300);
    assert.equal(metricValue(body, 'cluster_backup_image_area_free_bytes', { hypervisor: 'hv-b' }), 700);
    assert.equal(metricValue(body, 'cluster_backup_vms_held_down', { hypervisor: 'hv-b' }), 1);
    assert.equal(metricValue(body, 'cluster_backup_vms_held_down', { hypervisor: 'hv-a' }), 0);
  });
});
