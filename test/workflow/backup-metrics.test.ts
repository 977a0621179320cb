import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { cpSync, mkdirSync, readdirSync, readFileSync, statfsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Client } from '@temporalio/client';
import { simpleParser } from 'mailparser';
import type { Config } from '../../config/schema';
import type { DailySummary } from '../../domain/daily-summary';
import { calendarDay } from '../../domain/julian-day';
import { connectClient } from '../../scripts/commands/temporal-client';
import { freePort, stopProcess } from '../../scripts/sandbox/processes';
import { writeSupimDay } from '../../scripts/sandbox/supim-data';
import { supimSandbox, type SupimSandbox } from '../helpers/sandbox';
import { testDevServer } from '../helpers/temporal';
import { spawnWorker, writeConfigFile } from '../helpers/worker-process';
import { eventually } from '../helpers/eventually';
import { metricValue } from '../helpers/prometheus';

const BYTES_PER_FILE = 1000;

describe(
  'backup metrics of real daily runs, served by the worker process, and after its restart',
  { concurrency: false },
  () => {
    let server: Awaited<ReturnType<typeof testDevServer>>;
    let box: SupimSandbox;
    let config: Config;
    let configFile: string;
    let worker: ChildProcess | undefined;
    let client: Client;
    let closeClient: () => Promise<void>;
    let url: string;
    const scrape = async () => (await fetch(url)).text();
    /** The metrics once the last daily run's result is `result` (the report activity sets it). */
    const scrapeWhenDaily = (result: string) =>
      eventually(
        async () => {
          const text = await scrape();
          return metricValue(text, 'cluster_backup_last_run_result', { backup: 'daily', result }) === 1
            ? text
            : undefined;
        },
        `a daily run with result ${result} in the metrics`,
        60_000,
      );

    before(async () => {
      [server, box] = await Promise.all([testDevServer(), supimSandbox()]);
      const port = await freePort();
      url = `http://127.0.0.1:${port}/metrics`;
      config = {
        ...box.config,
        temporal: { address: server.address, namespace: 'default', taskQueue: 'backup-metrics' },
        worker: { storeHost: true, metricsBindAddress: `127.0.0.1:${port}` },
      };
      configFile = writeConfigFile(box.root, config);
      worker = spawnWorker(configFile, join(box.root, 'worker.log'));
      ({ client, close: closeClient } = await connectClient(config));
    });
    after(async () => {
      await closeClient?.();
      if (worker) await stopProcess(worker);
      await Promise.all([server.stop(), box.cleanup()]);
    });

    const daily = (date: string) =>
      client.workflow.execute('dailySupimBackup', {
        taskQueue: config.temporal.taskQueue,
        workflowId: `supim-${calendarDay(date).label}`,
        args: [{ date }],
      }) as Promise<DailySummary>;

    let firstSuccess: number;
    it('shows a good daily run: result, last success, bytes and files copied, the store', async () => {
      // Every day of the run is there (a day missing at the end of its window fails the run).
      const days = ['2026-03-10', '2026-03-09', '2026-03-08'].map((d) =>
        writeSupimDay(box.sourceTemplate, calendarDay(d), { bytesPerFile: BYTES_PER_FILE }),
      );
      const started = Date.now() / 1000;
      const summary = await daily('2026-03-10');
      assert.equal(summary.ok, true);
      const body = await scrapeWhenDaily('ok');
      firstSuccess = metricValue(body, 'cluster_backup_last_success_timestamp_seconds', { backup: 'daily' })!;
      assert.ok(firstSuccess >= Math.floor(started) && firstSuccess <= Date.now() / 1000, `${firstSuccess}`);
      assert.equal(metricValue(body, 'cluster_backup_last_run_result', { backup: 'daily', result: 'failed' }), 0);
      const files = days.reduce((n, d) => n + d.files.length, 0);
      assert.equal(metricValue(body, 'cluster_backup_daily_last_run_copied_files'), files);
      assert.equal(metricValue(body, 'cluster_backup_daily_last_run_copied_bytes'), files * BYTES_PER_FILE);
      const fs = statfsSync(box.destinationRoot);
      assert.equal(metricValue(body, 'cluster_backup_store_size_bytes', { store: 'daily' }), fs.blocks * fs.bsize);
      const free = metricValue(body, 'cluster_backup_store_free_bytes', { store: 'daily' })!;
      assert.ok(Math.abs(free - fs.bavail * fs.bsize) < 256 * 1024 ** 2, `free ${free} vs ${fs.bavail * fs.bsize}`);
      assert.equal(metricValue(body, 'cluster_backup_last_success_timestamp_seconds', { backup: 'weekly' }), undefined);
    });

    it('shows a daily run with a failed day as incomplete, keeps the last success, and its report draws both runs', async () => {
      const good = writeSupimDay(box.sourceTemplate, calendarDay('2026-03-20'), { bytesPerFile: BYTES_PER_FILE });
      // The day folder of 2026-078 is a file: that day fails, the run is incomplete.
      const broken = box.sourceTemplate.replace('{yyyy}', '2026').replace('{ddd}', '078');
      mkdirSync(dirname(broken), { recursive: true });
      cpSync(join(good.folder, good.files[0]!), broken);
      const summary = await daily('2026-03-20');
      assert.equal(summary.ok, false);
      const body = await scrapeWhenDaily('incomplete');
      assert.equal(metricValue(body, 'cluster_backup_last_run_result', { backup: 'daily', result: 'ok' }), 0);
      assert.equal(
        metricValue(body, 'cluster_backup_last_success_timestamp_seconds', { backup: 'daily' }),
        firstSuccess,
      );
      assert.equal(metricValue(body, 'cluster_backup_daily_last_run_copied_bytes'), good.files.length * BYTES_PER_FILE);

      const outbox = config.mail.outbox!;
      const eml = readdirSync(outbox).find((f) => f.includes('supim-2026-079'));
      assert.ok(eml, 'the report of the second run');
      const mail = await simpleParser(readFileSync(join(outbox, eml)));
      assert.equal((String(mail.html).match(/<td valign="bottom"/g) ?? []).length, 2, 'a bar per run');
      assert.match(
        mail.text ?? '',
        /Last runs:\nrun\s+result[^\n]*\n[- ]+\n2026-069\s+ok\s+[\d.]+ KiB\s+\d+\n2026-079\s+incomplete/,
      );
      assert.match(String(mail.html), /daily<\/b>/);
    });

    it('shows the same values after a worker restart, read back from Temporal', async () => {
      const before = await scrape();
      await stopProcess(worker!);
      worker = spawnWorker(configFile, join(box.root, 'worker-2.log'));
      const after = await eventually(
        async () => {
          const text = await scrape();
          const readBack = metricValue(text, 'cluster_backup_last_success_timestamp_seconds', { backup: 'daily' });
          return readBack ? text : undefined;
        },
        'the restarted worker to read the last runs back',
        60_000,
      );
      assert.equal(metricValue(after, 'cluster_backup_last_run_result', { backup: 'daily', result: 'incomplete' }), 1);
      assert.equal(metricValue(after, 'cluster_backup_last_run_result', { backup: 'daily', result: 'ok' }), 0);
      // Before: when the report was sent; after: when the run closed, a moment later.
      for (const name of [
        'cluster_backup_last_success_timestamp_seconds',
        'cluster_backup_last_run_timestamp_seconds',
      ]) {
        const was = metricValue(before, name, { backup: 'daily' })!;
        const is = metricValue(after, name, { backup: 'daily' })!;
        assert.ok(is >= was && is - was <= 5, `${name}: ${was} then ${is}`);
      }
      assert.equal(
        metricValue(after, 'cluster_backup_daily_last_run_copied_bytes'),
        metricValue(before, 'cluster_backup_daily_last_run_copied_bytes'),
      );
      assert.ok(metricValue(after, 'cluster_backup_store_size_bytes', { store: 'daily' })! > 0);
    });
  },
);
