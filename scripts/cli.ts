#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../config/load';
import { runWorker } from '../worker/main';
import { connectClient } from './commands/temporal-client';
import { formatDailySummary, startDaily } from './commands/run-daily';
import { formatWeeklySummary, startWeekly } from './commands/run-vms';

const USAGE = `usage: cluster-backup [--config FILE] <command>

commands:
  worker                                run the Temporal worker (until SIGINT/SIGTERM)
  run daily [--date YYYY-MM-DD] [--json] start the daily SUPIM backup (or join the running one), wait, print
                                        the summary; exit 0 only if every available day is backed up
  run vms [--vm NAME ...] [--json]      start this week's VM backup (or join it), wait, print per-VM results;
                                        exit 0 only if every VM was imaged, verified and is back as it was
  config check                          validate the config file and print it

The config file is --config, else $CLUSTER_BACKUP_CONFIG, else ./cluster-backup.yaml.`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string' },
      date: { type: 'string' },
      vm: { type: 'string', multiple: true },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help || positionals.length === 0) {
    console.log(USAGE);
    return values.help ? 0 : 2;
  }
  const configFile = values.config ?? process.env.CLUSTER_BACKUP_CONFIG ?? 'cluster-backup.yaml';
  const command = positionals.join(' ');

  switch (command) {
    case 'worker':
      await runWorker(configFile);
      return 0;
    case 'config check': {
      const config = loadConfig(configFile);
      console.log(JSON.stringify(config, null, 2));
      return 0;
    }
    case 'run daily': {
      const config = loadConfig(configFile);
      const { client, close } = await connectClient(config);
      try {
        const handle = await startDaily(client, config, values.date);
        if (!values.json)
          console.error(`workflow ${handle.workflowId} started (run ${handle.firstExecutionRunId}); waiting...`);
        const summary = await handle.result();
        console.log(values.json ? JSON.stringify(summary, null, 2) : formatDailySummary(summary));
        return summary.ok ? 0 : 1;
      } finally {
        await close();
      }
    }
    case 'run vms': {
      const config = loadConfig(configFile);
      const { client, close } = await connectClient(config);
      try {
        const handle = await startWeekly(client, config, values.vm);
        if (!values.json)
          console.error(`workflow ${handle.workflowId} started (run ${handle.firstExecutionRunId}); waiting...`);
        const summary = await handle.result();
        console.log(values.json ? JSON.stringify(summary, null, 2) : formatWeeklySummary(summary));
        return summary.ok ? 0 : 1;
      } finally {
        await close();
      }
    }
    default:
      console.error(`unknown command: ${command}\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof ConfigError ? err.message : `error: ${(err as Error).stack ?? String(err)}`);
    process.exit(err instanceof ConfigError ? 2 : 1);
  },
);
