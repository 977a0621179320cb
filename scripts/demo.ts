/**
 * The embedded default, end to end on one machine: a local Temporal dev server (SQLite under .data/),
 * a sandbox compute host (real sshd on loopback with generated keys and SUPIM-like data), the worker,
 * and one daily run whose summary is printed. `--keep-running` leaves it all up for the Web UI.
 */
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { stringify } from 'yaml';
import { loadConfig } from '../config/load';
import { isoDateInZone, julianDaysEndingOn } from '../domain/julian-day';
import { renderPathTemplate } from '../domain/path-template';
import { createWorker } from '../worker/create-worker';
import { connectClient } from './commands/temporal-client';
import { formatDailySummary, startDaily } from './commands/run-daily';
import { freePort } from './sandbox/processes';
import { startSshHost } from './sandbox/sshd-host';
import { writeSupimDay } from './sandbox/supim-data';
import { PROJECT_ROOT, startDevServer } from './sandbox/temporal-dev-server';

const TIME_ZONE = 'America/Sao_Paulo';

async function portOr(preferred: number): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(freePort()));
    probe.listen(preferred, '127.0.0.1', () => probe.close(() => resolve(preferred)));
  });
}

/** The run's report is written by the workflow's last activity: the newest .eml in the outbox. */
function newestReport(outbox: string): string | undefined {
  if (!existsSync(outbox)) return undefined;
  const files = readdirSync(outbox)
    .filter((f) => f.endsWith('.eml'))
    .sort();
  return files.length ? join(outbox, files.at(-1)!) : undefined;
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { 'keep-running': { type: 'boolean', default: false } } });
  const dataDir = join(PROJECT_ROOT, '.data', 'demo');
  mkdirSync(dataDir, { recursive: true });
  const step = (text: string) => console.log(`\n== ${text}`);

  step('Temporal dev server');
  const server = await startDevServer({
    dbFile: join(dataDir, 'temporal.db'),
    logFile: join(dataDir, 'temporal.log'),
    port: await portOr(7233),
    uiPort: await portOr(8233),
  });
  console.log(`gRPC ${server.address}, Web UI ${server.uiUrl}, state in ${join(dataDir, 'temporal.db')}`);

  step('sandbox compute host (OpenSSH sshd on loopback, generated keys, host key pinned in known_hosts)');
  const user = process.getuid?.() === 0 ? 'supim' : userInfo().username;
  const compute = await startSshHost({ dir: join(dataDir, 'compute-ssh'), address: '127.0.0.2', user });
  console.log(`${user}@${compute.config.host}:${compute.config.port}, known_hosts ${compute.config.knownHostsFile}`);

  const sourceTemplate = join(dataDir, 'compute', 'supim-davs', '{yyyy}', '{ddd}');
  const today = isoDateInZone(new Date(), TIME_ZONE);
  step(`SUPIM-DAVS outputs for ${today} and the two days before (today's still being written)`);
  for (const [i, day] of julianDaysEndingOn(today, 2).entries()) {
    const folder = renderPathTemplate(sourceTemplate, day);
    if (existsSync(folder)) continue;
    // Today's files are fresh: the run must call that day "not yet" rather than copy half of it.
    writeSupimDay(sourceTemplate, day, { bytesPerFile: 256 * 1024, ageSeconds: i === 0 ? 0 : 3600 * 24 * i });
    console.log(`wrote ${folder}`);
  }

  const configFile = join(dataDir, 'cluster-backup.yaml');
  writeFileSync(
    configFile,
    stringify({
      temporal: { address: server.address, namespace: 'default', taskQueue: 'cluster-backup' },
      hosts: { compute: compute.config },
      supim: {
        host: 'compute',
        sourceTemplate,
        destinationRoot: join(dataDir, 'backup-store', 'supim'),
        daysBack: 2,
        timeZone: TIME_ZONE,
        settleSeconds: 300,
      },
      // No SMTP server in the sandbox: reports are written as .eml files here (set mail.smtp for real mail).
      mail: { outbox: join(dataDir, 'outbox'), recipients: { daily: ['operators@localhost'] } },
    }),
  );
  const config = loadConfig(configFile);
  console.log(`config: ${configFile}`);

  step('worker + daily run');
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const { worker, connection } = await createWorker(config);
  const running = worker.run();
  const { client, close } = await connectClient(config);
  let exitCode = 1;
  try {
    const handle = await startDaily(client, config, today);
    console.log(`workflow ${handle.workflowId}: ${server.uiUrl}/namespaces/default/workflows/${handle.workflowId}`);
    const summary = await handle.result();
    console.log(`\n${formatDailySummary(summary)}`);
    console.log(`\nbackup store: ${config.supim!.destinationRoot}`);
    console.log(`report: ${newestReport(config.mail.outbox!) ?? '(none yet: see the worker log)'}`);
    console.log('Run it again: days already backed up copy nothing; the "not yet" day is copied once it has settled.');
    exitCode = summary.ok ? 0 : 1;
    if (values['keep-running']) {
      console.log(`\nEverything stays up; Web UI ${server.uiUrl}. Ctrl-C to stop.`);
      await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
    }
  } finally {
    await close();
    worker.shutdown();
    await running;
    await connection.close();
    await compute.stop();
    await server.stop();
  }
  return exitCode;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
