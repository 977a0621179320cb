import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { escapeHtml, runUrl, weeklyReport } from '../../domain/report';
import type { VmResult, WeeklySummary } from '../../domain/weekly-summary';

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

  it('escapes every value in the HTML', () => {
    const r = weeklyReport({ state: 'completed', summary: summary([vm('<script>x</script>')]) }, link, 'W');
    assert.ok(!r.html.includes('<script>'));
    assert.match(r.html, /&lt;script&gt;x&lt;\/script&gt;/);
    assert.equal(escapeHtml(`"'&<>`), '&quot;&#39;&amp;&lt;&gt;');
    assert.equal(runUrl({ ...link, uiBaseUrl: undefined }), undefined);
  });
});
