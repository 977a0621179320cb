import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { dailyReport, escapeHtml, runUrl, weeklyReport } from '../../domain/report';
import { dailyTrendPoint, outcomeResult, trendOf, weeklyTrendPoint } from '../../domain/report-trend';
import { sampleDaily, sampleDailyTrend, sampleLink, sampleStores, sampleWeekly } from '../helpers/report-samples';
import type { ResticImage, VmResult, WeeklySummary } from '../../domain/weekly-summary';

const link = { namespace: 'default', workflowId: 'vms-2026-W48', runId: 'r1', uiBaseUrl: 'http://ui:8233/' };
const image = (path: string) => ({
  disk: 'vda',
  path,
  bytes: 2 * 1024 ** 3,
  virtualSize: 8 * 1024 ** 3,
  sha256: 'a'.repeat(64),
});

function vm(name: string, over: Partial<VmResult> = {}): VmResult {
  return {
    vm: name,
    status: 'backed-up',
    wasRunning: true,
    runningAtEnd: true,
    downtimeMs: 12_300,
    images: [image(`/img/${name}/vda.qcow2`)],
    stored: [image(`/store/${name}/vda.qcow2`)],
    previousImageBytes: 1024 ** 3,
    steps: [{ step: 'stopping', startedAt: '', ms: 2000 }],
    deleted: ['store: x/20261101T050000Z (beyond the retention policy)'],
    ...over,
  };
}

const summary = (vms: VmResult[], extra: Partial<WeeklySummary> = {}): WeeklySummary => ({
  week: '2026-W48',
  stamp: '20261129T050000Z',
  vms,
  ok: vms.every((v) => v.status === 'backed-up'),
  startedAt: '',
  finishedAt: '',
  ...extra,
});

describe('weekly report', () => {
  it('says OK with the VM count, image change, hash match, downtime, what retention deleted and would delete', () => {
    const dryRun = vm('web', { wouldDelete: ['store: web/20261004T050000Z (beyond the retention policy)'] });
    const r = weeklyReport({ state: 'completed', summary: summary([vm('db'), dryRun]) }, link, '2026-W48');
    assert.equal(r.subject, '[cluster-backup] OK weekly 2026-W48 (2/2 VMs)');
    assert.match(r.text, /db\s+backed-up\s+running\s+12\.3 s\s+2\.0 GiB\s+100\.0%\s+match/);
    assert.match(r.text, /retention deleted store: x\/20261101T050000Z/);
    assert.match(
      r.text,
      /retention would delete store: web\/20261004T050000Z \(beyond the retention policy\) \(dry run: kept\)/,
    );
    assert.match(r.text, /http:\/\/ui:8233\/namespaces\/default\/workflows\/vms-2026-W48\/r1\/history/);
  });

  it('store.engine restic: says what each set added to the repository, of its raw bytes', () => {
    const raw = { ...image('restic#1a2b3c4d:/db/vda.raw'), bytes: 8 * 1024 ** 3 };
    const stored: ResticImage = { ...raw, snapshot: '1a2b3c4d', dataAdded: 164 * 1024 ** 2 };
    const restic = vm('db', { images: [raw], stored: [stored] });
    const r = weeklyReport({ state: 'completed', summary: summary([restic, vm('web')]) }, link, '2026-W48');
    assert.match(r.html, /added to repository.*164\.0 MiB of 8\.0 GiB raw \(2\.0 %\)/s);
    assert.equal(r.html.match(/added to repository/g)?.length, 1, 'only for the VM stored in restic');
  });

  it('several hypervisors: VMs grouped by host as host/vm, an unreachable host named with why', () => {
    const hosts = [
      { hypervisor: 'hv1', workflowId: 'vms-2026-W48-hv1-S', startedAt: '05:00', finishedAt: '05:20' },
      { hypervisor: 'hv2', workflowId: 'vms-2026-W48-hv2-S', unreachable: 'hv2: connect ECONNREFUSED' },
    ];
    const down = vm('db', {
      hypervisor: 'hv2',
      status: 'skipped',
      reason: 'hypervisor unreachable, untouched: hv2: connect ECONNREFUSED',
      images: [],
      stored: [],
    });
    const r = weeklyReport(
      { state: 'completed', summary: summary([down, vm('web', { hypervisor: 'hv1' })], { hosts, ok: false }) },
      link,
      '2026-W48',
    );
    assert.equal(r.subject, '[cluster-backup] FAILED weekly 2026-W48: hv2/db skipped');
    assert.ok(r.text.indexOf('hv1/web') < r.text.indexOf('hv2/db'), 'grouped by host, in the hosts` order');
    assert.match(r.text, /hypervisor hv2: unreachable, its VMs untouched: hv2: connect ECONNREFUSED/);
    assert.match(r.text, /hypervisor hv1: 1 VM\(s\), 05:00 to 05:20 \(vms-2026-W48-hv1-S\)/);
  });

  it('names the first failing VM and step in the subject, and the count of the others', () => {
    const failed = vm('vm-db', { status: 'failed', failedStep: 'verifying', reason: 'qemu-img check found errors' });
    const skipped = vm('vm-web', { status: 'skipped', reason: 'not enough space' });
    const r = weeklyReport({ state: 'completed', summary: summary([failed, skipped]) }, link, '2026-W48');
    assert.equal(r.subject, '[cluster-backup] FAILED weekly 2026-W48: vm-db verifying failed (+1 more)');
    assert.match(r.text, /vm-db: failed at verifying: qemu-img check found errors/);
  });

  it('tells aborted, cancelled and crashed runs apart', () => {
    assert.equal(
      weeklyReport({ state: 'completed', summary: summary([], { aborted: 'maintenance' }) }, link, 'W').subject,
      '[cluster-backup] ABORTED weekly W: maintenance',
    );
    assert.equal(weeklyReport({ state: 'cancelled' }, link, 'W').subject, '[cluster-backup] CANCELLED weekly W');
    assert.equal(
      weeklyReport({ state: 'failed', error: 'boom' }, link, 'W').subject,
      '[cluster-backup] FAILED weekly W: boom',
    );
  });

  it('says a run that left the VMs to an earlier one did nothing, and tells held-down and failed clean-ups', () => {
    const skipped = weeklyReport(
      { state: 'completed', summary: summary([], { alreadyRunning: 'vms-2026-W48' }) },
      link,
      '2026-W48',
    );
    assert.equal(skipped.subject, '[cluster-backup] SKIPPED weekly 2026-W48: vms-2026-W48 was already running');
    assert.match(skipped.html, /SKIPPED · weekly backup 2026-W48/);
    const r = weeklyReport(
      {
        state: 'completed',
        summary: summary([
          vm('db', { heldDownBy: 'vms-2026-W47' }),
          vm('web', { status: 'failed', compensations: [{ name: 'remove partial images', ok: false, error: 'EIO' }] }),
        ]),
      },
      link,
      '2026-W48',
    );
    assert.match(r.text, /db: found off, left down by vms-2026-W47 \(a run that is gone\): started again/);
    assert.match(r.text, /web: clean-up remove partial images failed: EIO/);
  });

  it('lists the last boot test of each VM`s stored images, a failed one marked', () => {
    const r = weeklyReport({ state: 'completed', summary: summary([vm('db')]) }, link, '2026-W48', {
      restoreTests: {
        db: {
          vm: 'db',
          stamp: '20261122T050000Z',
          passed: true,
          testedAt: '2026-11-22T08:00:00Z',
          detail: 'login: seen',
        },
        web: {
          vm: 'web',
          stamp: '20261122T050000Z',
          passed: false,
          testedAt: '2026-11-22T08:05:00Z',
          detail: 'no sign of life in 120 s',
        },
      },
    });
    assert.match(r.text, /boot test of db set 20261122T050000Z: passed/);
    assert.match(
      r.text,
      /boot test of web set 20261122T050000Z: FAILED at 2026-11-22T08:05:00Z \(no sign of life in 120 s\)/,
    );
    assert.match(r.html, /boot test of web set 20261122T050000Z: FAILED/);
  });

  it('escapes every value in the HTML', () => {
    const r = weeklyReport({ state: 'completed', summary: summary([vm('<script>x</script>')]) }, link, 'W');
    assert.ok(!r.html.includes('<script>'));
    assert.match(r.html, /&lt;script&gt;x&lt;\/script&gt;/);
    assert.equal(escapeHtml(`"'&<>`), '&quot;&#39;&amp;&lt;&gt;');
    assert.equal(runUrl({ ...link, uiBaseUrl: undefined }), undefined);
  });
});

describe('daily report', () => {
  const GiB = 1024 ** 3;

  it('adds totals, the last runs (the current one last, one per day, at most 14) and the store in both parts', () => {
    const past = [
      ...sampleDailyTrend(),
      // A retried run of a day already listed: only the newest counts.
      { label: '2026-330', result: 'failed' as const, bytesCopied: 0, filesCopied: 0 },
    ];
    const r = dailyReport(sampleDaily(), sampleLink('supim-2026-331'), '2026-331', {
      pastRuns: past,
      stores: sampleStores(),
    });
    assert.match(r.text, /days backed up: 1\/3, copied: 15\.2 GiB, files copied: 611/);
    const trend = r.text.slice(r.text.indexOf('Last runs:'));
    const runs = [...trend.matchAll(/^(2026-\d{3})\s+(\S+)/gm)].map((m) => `${m[1]} ${m[2]}`);
    assert.equal(runs.length, 14);
    assert.equal(runs[0], '2026-318 ok');
    assert.equal(runs.at(-2), '2026-330 ok');
    assert.equal(runs.at(-1), '2026-331 incomplete');
    assert.match(
      r.text,
      /store daily \+ images \/srv\/backup: 2\.1 TiB free of 8\.0 TiB \(26%\), image sets kept: 1\.9 TiB \(36\)/,
    );
    assert.match(r.text, /2026-330 failed: connection to compute/);
    // The HTML: one bar per run, the current run's label in bold, the store bar with its legend.
    assert.equal((r.html.match(/<td valign="bottom"/g) ?? []).length, 14);
    assert.match(r.html, /font-weight:bold;[^>]*>331</);
    assert.match(r.html, /image sets retention keeps \(36\) 1\.9 TiB/);
  });

  it('leaves out what it could not read, and scales bars to the largest run', () => {
    const r = dailyReport(sampleDaily(), sampleLink('supim-2026-331'), '2026-331');
    assert.doesNotMatch(r.text, /Last runs|store /);
    assert.doesNotMatch(r.html, /LAST RUNS|Last runs|Backup store/);
    const scaled = dailyReport(sampleDaily(), sampleLink('supim-2026-331'), '2026-331', {
      pastRuns: [{ label: '2026-330', result: 'ok', bytesCopied: 30.4 * GiB, filesCopied: 9 }],
    });
    const heights = [...scaled.html.matchAll(/<div style="height:(\d+)px/g)].map((m) => Number(m[1]));
    assert.deepEqual(heights, [56, 28]);
  });

  it('turns outcomes into trend points the way the search attribute BackupResult names them', () => {
    assert.equal(outcomeResult({ state: 'cancelled' }), 'cancelled');
    assert.equal(outcomeResult({ state: 'failed', error: 'x' }), 'failed');
    assert.equal(outcomeResult(sampleDaily()), 'incomplete');
    assert.deepEqual(dailyTrendPoint('2026-331', sampleDaily()), {
      label: '2026-331',
      result: 'incomplete',
      bytesCopied: Math.round(15.2 * GiB),
      filesCopied: 611,
    });
    const weekly = weeklyTrendPoint('2026-W48', sampleWeekly());
    assert.deepEqual(
      weekly.vms.map((v) => [v.vm, v.status, v.imageBytes !== undefined, v.downtimeMs]),
      [
        ['db', 'backed-up', true, 94_300],
        ['web', 'backed-up', true, 41_700],
        ['license-server', 'failed', false, 132_900],
      ],
    );
    assert.deepEqual(trendOf({ label: 'b' }, [{ label: 'c' }, { label: 'b' }, { label: 'a' }, { label: '0' }], 3), [
      { label: 'a' },
      { label: 'b' },
      { label: 'c' },
    ]);
  });
});
