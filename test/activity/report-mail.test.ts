import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { simpleParser } from 'mailparser';
import { createActivities, createServices } from '../../activities';
import type { Config } from '../../config/schema';
import { parseConfig } from '../../config/load';
import { blankDayResult, type DailySettings, type DailySummary } from '../../domain/daily-summary';
import { calendarDay } from '../../domain/julian-day';
import { runActivity } from '../helpers/sandbox';
import { startSmtpServer, type TestSmtpServer } from '../helpers/smtp';

const settings: DailySettings = {
  timeZone: 'America/Sao_Paulo',
  daysBack: 2,
  sourceTemplate: '/data/{yyyy}/{ddd}',
  destinationRoot: '/backup',
  verify: 'size',
  heartbeatTimeoutSeconds: 30,
  storeTaskQueue: 'cluster-backup-store',
};
const link = { namespace: 'default', workflowId: 'supim-2026-331', runId: 'run-1' };

function summary(): DailySummary {
  const days = ['2026-11-27', '2026-11-26', '2026-11-25'].map((d, i) => ({
    ...blankDayResult(calendarDay(d), settings, i === 0 ? ('not-yet' as const) : ('copied' as const)),
    filesCopied: 3,
    filesInSource: 3,
    bytesCopied: 3 * 1024,
    ...(i === 0 ? { reason: 'source folder does not exist yet <script>alert(1)</script>' } : {}),
  }));
  return { runDate: '2026-11-27', timeZone: 'America/Sao_Paulo', days, ok: true, startedAt: '', finishedAt: '' };
}

describe('email reports', () => {
  let root: string;
  let smtp: TestSmtpServer;
  /** The activities as the worker registers them (through the activity edge), their mailer from `config`. */
  const reportActivities = (config: Config) =>
    createActivities({
      config,
      services: createServices({ config, openSsh: () => Promise.reject(new Error('no SSH')) }),
    });
  const mailConfig = (pass: string, extra: Record<string, unknown> = {}) => {
    writeFileSync(join(root, 'smtp-password'), `${pass}\n`, { mode: 0o600 });
    return parseConfig(
      {
        hosts: { compute: { host: '127.0.0.2', user: 'supim', privateKeyFile: 'k', knownHostsFile: 'kh' } },
        supim: { host: 'compute', sourceTemplate: '/data/{yyyy}/{ddd}', destinationRoot: 'backup' },
        mail: {
          from: 'backup@cluster.test',
          recipients: { daily: ['ops@cluster.test', 'chief@cluster.test'] },
          smtp: {
            host: '127.0.0.1',
            port: smtp.port,
            security: 'starttls',
            user: 'reporter',
            passwordFile: join(root, 'smtp-password'),
            caFile: smtp.certFile,
          },
          webUiBaseUrl: 'http://127.0.0.1:8233',
          ...extra,
        },
      },
      'test',
      root,
    );
  };

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'cluster-backup-mail-'));
    smtp = await startSmtpServer(root, { user: 'reporter', pass: 's3cret' });
  });
  after(async () => {
    await smtp.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('delivers one message over STARTTLS with AUTH: subject, recipients, a row per day, escaped HTML, link to the run', async () => {
    const { sendReport } = reportActivities(mailConfig('s3cret'));
    const before = smtp.messages.length;
    const sent = await runActivity(sendReport, {
      job: 'daily',
      outcome: { state: 'completed', summary: summary() },
      link,
      runLabel: '2026-331',
    });
    assert.equal(sent.via, 'smtp');
    assert.equal(smtp.messages.length, before + 1);
    const mail = smtp.messages.at(-1)!;
    assert.equal(mail.subject, '[cluster-backup] OK daily 2026-331 (2/3 days, 1 not yet)');
    assert.deepEqual(mail.envelopeTo, ['ops@cluster.test', 'chief@cluster.test']);
    assert.match(mail.text ?? '', /2026-330\s+2026-11-26\s+copied\s+3\/3/);
    const html = String(mail.html);
    assert.equal((html.match(/>2026-3(29|30|31)</g) ?? []).length, 3, 'a row per day');
    assert.ok(!html.includes('<script>'), 'values are escaped');
    assert.match(html, /&lt;script&gt;/);
    assert.match(
      html,
      /href="http:\/\/127\.0\.0\.1:8233\/namespaces\/default\/workflows\/supim-2026-331\/run-1\/history"/,
    );
  });

  it('says what failed in the subject of a failed run', async () => {
    const { sendReport } = reportActivities(mailConfig('s3cret'));
    const failed = summary();
    failed.days[1] = { ...failed.days[1]!, status: 'failed', reason: 'source is not a folder' };
    failed.ok = false;
    await runActivity(sendReport, {
      job: 'daily',
      outcome: { state: 'completed', summary: failed },
      link,
      runLabel: '2026-331',
    });
    assert.equal(
      smtp.messages.at(-1)!.subject,
      '[cluster-backup] FAILED daily 2026-331: 2026-330 source is not a folder',
    );
  });

  it('gives a clear, non-retryable error for a wrong password', async () => {
    const { sendReport } = reportActivities(mailConfig('wrong'));
    await assert.rejects(
      runActivity(sendReport, {
        job: 'daily',
        outcome: { state: 'completed', summary: summary() },
        link,
        runLabel: '2026-331',
      }),
      (err: unknown) =>
        err instanceof ApplicationFailure &&
        err.type === 'MailAuthError' &&
        err.nonRetryable === true &&
        /refused the login of reporter/.test(err.message),
    );
  });

  it('writes a parseable .eml into the outbox when no SMTP server is configured', async () => {
    const outbox = join(root, 'outbox');
    const { sendReport } = reportActivities(mailConfig('unused', { smtp: undefined, outbox }));
    const sent = await runActivity(sendReport, {
      job: 'weekly',
      outcome: { state: 'cancelled' },
      link: { ...link, workflowId: 'vms-2026-W48' },
      runLabel: '2026-W48',
    });
    assert.equal(sent.via, 'outbox');
    assert.deepEqual(readdirSync(outbox), [sent.where.split('/').at(-1)]);
    const parsed = await simpleParser(readFileSync(sent.where));
    assert.equal(parsed.subject, '[cluster-backup] CANCELLED weekly 2026-W48');
    assert.match(parsed.text ?? '', /CANCELLED/);
  });
});
