import assert from 'node:assert/strict';
import { cpSync, mkdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Config } from '../../config/schema';
import { calendarDay } from '../../domain/julian-day';
import { connectClient } from '../../scripts/commands/temporal-client';
import { dailyWorkflowId, startDaily } from '../../scripts/commands/run-daily';
import { writeSupimDay } from '../../scripts/sandbox/supim-data';
import type { DevServer } from '../../scripts/sandbox/temporal-dev-server';
import { supimSandbox, type SupimSandbox } from '../helpers/sandbox';
import { captureHistory } from '../helpers/history-capture';
import { startSmtpServer, type TestSmtpServer } from '../helpers/smtp';
import { inProcessWorker, quietWorkerLogs, testDevServer } from '../helpers/temporal';

quietWorkerLogs();

/** Copies files of a generated day into the backup as an earlier run would have (same size and mtime). */
function preBackup(box: SupimSandbox, folder: string, label: string, files: string[]): void {
  for (const name of files) {
    const target = join(box.destinationRoot, label.slice(0, 4), label.slice(5), name);
    mkdirSync(dirname(target), { recursive: true });
    cpSync(join(folder, name), target);
    const { mtime } = statSync(join(folder, name));
    utimesSync(target, mtime, mtime);
  }
}

describe('dailySupimBackup on a real Temporal dev server', () => {
  let server: DevServer;
  let box: SupimSandbox;
  let config: Config;
  let worker: { stop: () => Promise<void> };
  let smtp: TestSmtpServer;
  /** The one message the run with this workflow ID sent (fails if none or several). */
  const reportOf = (workflowId: string) => {
    const found = smtp.messages.filter((m) => String(m.text).includes(`Workflow ${workflowId} `));
    assert.equal(found.length, 1, `reports for ${workflowId}: ${found.map((m) => m.subject).join(' | ')}`);
    return found[0]!;
  };

  before(async () => {
    [server, box] = await Promise.all([testDevServer(), supimSandbox()]);
    smtp = await startSmtpServer(box.root);
    config = {
      ...box.config,
      temporal: { address: server.address, namespace: 'default', taskQueue: 'daily-test' },
      mail: {
        ...box.config.mail,
        recipients: { daily: ['ops@cluster.test'], weekly: [] },
        smtp: { host: '127.0.0.1', port: smtp.port, security: 'starttls', caFile: smtp.certFile },
      },
    };
    worker = await inProcessWorker(config);
  });
  after(async () => {
    await worker?.stop();
    await smtp.stop();
    await Promise.all([server.stop(), box.cleanup()]);
  });

  it('backs up three days across a year boundary: one missing, one partial, one complete; a rerun copies nothing', async () => {
    // Run date 2025-01-01: days 2025-001 (missing), 2024-366 (partial), 2024-365 (complete).
    const partial = writeSupimDay(box.sourceTemplate, calendarDay('2024-12-31'), { bytesPerFile: 10_000 });
    const complete = writeSupimDay(box.sourceTemplate, calendarDay('2024-12-30'), { bytesPerFile: 10_000 });
    preBackup(box, partial.folder, '2024-366', partial.files.slice(0, 5));
    preBackup(box, complete.folder, '2024-365', complete.files);

    const { client, close } = await connectClient(config);
    try {
      const handle = await startDaily(client, config, '2025-01-01');
      assert.equal(handle.workflowId, 'supim-2025-001');
      const summary = await handle.result();
      await captureHistory(handle, 'daily-ok');
      assert.deepEqual(
        summary.days.map((d) => [d.day.label, d.status, d.filesCopied]),
        [
          ['2025-001', 'not-yet', 0],
          ['2024-366', 'copied', partial.files.length - 5],
          ['2024-365', 'complete', 0],
        ],
      );
      assert.equal(summary.ok, true);
      assert.equal(summary.days[1]!.bytesCopied, (partial.files.length - 5) * 10_000);
      const mail = reportOf('supim-2025-001');
      assert.equal(mail.subject, '[cluster-backup] OK daily 2025-001 (2/3 days, 1 not yet)');
      assert.deepEqual(mail.envelopeTo, ['ops@cluster.test']);
      assert.match(String(mail.text), /2025-001\s+2025-01-01\s+not-yet/);

      const before = smtp.messages.length;
      const rerun = await (await startDaily(client, config, '2025-01-01')).result();
      assert.equal(smtp.messages.length, before + 1, 'exactly one report per run');
      assert.deepEqual(
        rerun.days.map((d) => [d.day.label, d.status, d.filesCopied]),
        [
          ['2025-001', 'not-yet', 0],
          ['2024-366', 'complete', 0],
          ['2024-365', 'complete', 0],
        ],
      );
    } finally {
      await close();
    }
  });

  it('joins the run already going for a date instead of starting a second one', async () => {
    const { client, close } = await connectClient(config);
    try {
      const [a, b] = await Promise.all([
        startDaily(client, config, '2026-06-15'),
        startDaily(client, config, '2026-06-15'),
      ]);
      assert.equal(a.workflowId, dailyWorkflowId('2026-06-15'));
      assert.equal(a.firstExecutionRunId, b.firstExecutionRunId);
      await a.result();
    } finally {
      await close();
    }
  });

  it('reports a day that cannot be read as failed and still backs up the others', async () => {
    const ok = writeSupimDay(box.sourceTemplate, calendarDay('2026-02-01'), { bytesPerFile: 100 });
    writeSupimDay(box.sourceTemplate, calendarDay('2026-01-30'), { bytesPerFile: 100 }); // the oldest day is there
    const broken = calendarDay('2026-01-31');
    // The day folder is a file: the listing fails for that day only.
    const brokenFolder = box.sourceTemplate.replace('{yyyy}', '2026').replace('{ddd}', '031');
    mkdirSync(dirname(brokenFolder), { recursive: true });
    cpSync(join(ok.folder, ok.files[0]!), brokenFolder);
    const { client, close } = await connectClient(config);
    try {
      const handle = await startDaily(client, config, '2026-02-01');
      const summary = await handle.result();
      await captureHistory(handle, 'daily-failed-day');
      const byLabel = Object.fromEntries(summary.days.map((d) => [d.day.label, d]));
      assert.equal(byLabel['2026-032']!.status, 'copied');
      assert.equal(byLabel[broken.label]!.status, 'failed');
      assert.match(byLabel[broken.label]!.reason ?? '', /not a folder/);
      assert.equal(summary.ok, false);
      assert.equal(
        reportOf('supim-2026-032').subject,
        '[cluster-backup] FAILED daily 2026-032: 2026-031 source is not a folder',
      );
    } finally {
      await close();
    }
  });

  it('calls a day still not there on its last run in the window missing: the run is not OK and the subject says so', async () => {
    writeSupimDay(box.sourceTemplate, calendarDay('2026-09-10'), { bytesPerFile: 100 });
    writeSupimDay(box.sourceTemplate, calendarDay('2026-09-09'), { bytesPerFile: 100 });
    const { client, close } = await connectClient(config);
    try {
      const summary = await (await startDaily(client, config, '2026-09-10')).result();
      assert.deepEqual(
        summary.days.map((d) => [d.day.label, d.status]),
        [
          ['2026-253', 'copied'],
          ['2026-252', 'copied'],
          ['2026-251', 'missing'],
        ],
      );
      assert.equal(summary.ok, false);
      assert.equal(
        reportOf('supim-2026-253').subject,
        '[cluster-backup] FAILED daily 2026-253: 2026-251 MISSING (source folder does not exist yet; last run in the window)',
      );
    } finally {
      await close();
    }
  });

  it('keeps a successful backup successful when the report cannot be sent (wrong SMTP password)', async () => {
    const guarded = await startSmtpServer(box.root, { user: 'reporter', pass: 'right' });
    const passwordFile = join(box.root, 'wrong-password');
    writeFileSync(passwordFile, 'wrong\n', { mode: 0o600 });
    const strict: Config = {
      ...config,
      temporal: { ...config.temporal, taskQueue: 'daily-wrong-password' },
      mail: {
        ...config.mail,
        smtp: { ...config.mail.smtp!, port: guarded.port, caFile: guarded.certFile, user: 'reporter', passwordFile },
      },
    };
    const second = await inProcessWorker(strict);
    const { client, close } = await connectClient(strict);
    try {
      writeSupimDay(box.sourceTemplate, calendarDay('2026-08-01'), { bytesPerFile: 100 });
      writeSupimDay(box.sourceTemplate, calendarDay('2026-07-30'), { bytesPerFile: 100 }); // the oldest day is there
      const handle = await startDaily(client, strict, '2026-08-01');
      const summary = await handle.result();
      assert.equal(summary.ok, true);
      assert.equal(guarded.messages.length, 0);
      const history = await handle.fetchHistory();
      const failures = (history.events ?? [])
        .map((e) => e.activityTaskFailedEventAttributes?.failure)
        .filter((f) => f !== undefined && f !== null);
      assert.equal(failures.length, 1, 'the failed send is visible in the history');
      assert.match(failures[0]!.message ?? '', /refused the login of reporter/);
    } finally {
      await close();
      await second.stop();
      await guarded.stop();
    }
  });
});
