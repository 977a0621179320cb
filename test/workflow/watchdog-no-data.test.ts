import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { simpleParser } from 'mailparser';
import type { Config } from '../../config/schema';
import { startDaily } from '../../scripts/commands/run-daily';
import { connectClient } from '../../scripts/commands/temporal-client';
import type { DevServer } from '../../scripts/sandbox/temporal-dev-server';
import { captureHistory } from '../helpers/history-capture';
import { supimSandbox, type SupimSandbox } from '../helpers/sandbox';
import { inProcessWorker, quietWorkerLogs, testDevServer } from '../helpers/temporal';

quietWorkerLogs();

describe('watchdog: daily runs that find no data at all (wrong sourceTemplate, stopped model)', () => {
  let server: DevServer;
  let box: SupimSandbox;
  let config: Config;
  let worker: { stop: () => Promise<void> };

  before(async () => {
    [server, box] = await Promise.all([testDevServer(), supimSandbox()]);
    config = {
      ...box.config,
      temporal: { address: server.address, namespace: 'default', taskQueue: 'watchdog-test' },
      schedules: {
        ...box.config.schedules,
        watchdog: { ...box.config.schedules.watchdog, maxDailyRunsWithoutData: 3 },
      },
    };
    worker = await inProcessWorker(config);
  });
  after(async () => {
    await worker?.stop();
    await Promise.all([server.stop(), box.cleanup()]);
  });

  it('stays quiet for two such runs and alerts on the third', async () => {
    const { client, close } = await connectClient(config);
    const outbox = config.mail.outbox!;
    const alerts = () => (existsSync(outbox) ? readdirSync(outbox).filter((f) => f.includes('no-data')) : []);
    const watchdog = async (id: string, history?: string) => {
      const handle = await client.workflow.start('backupWatchdog', {
        taskQueue: config.temporal.taskQueue,
        workflowId: id,
        args: [{ jobs: ['daily'] }],
      });
      await handle.result();
      if (history) await captureHistory(handle, history);
    };
    try {
      // Nothing under the source template for any of these dates.
      for (const date of ['2030-03-01', '2030-03-02']) await (await startDaily(client, config, date)).result();
      await watchdog('watchdog-after-two');
      assert.deepEqual(alerts(), []);

      const third = await (await startDaily(client, config, '2030-03-03')).result();
      assert.ok(third.days.every((d) => d.filesInSource === 0));
      await watchdog('watchdog-after-three', 'watchdog-no-data');
      assert.equal(alerts().length, 1);
      const mail = await simpleParser(readFileSync(join(outbox, alerts()[0]!)));
      assert.equal(
        mail.subject,
        '[cluster-backup] ALERT daily backup found no data for 3 runs (2030-03-01 to 2030-03-03)',
      );
      assert.match(mail.text ?? '', /Check supim\.sourceTemplate/);
    } finally {
      await close();
    }
  });
});
