#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { ScheduleNotFoundError, type Client } from '@temporalio/client';
import { ConfigError, loadConfig } from '../config/load';
import type { Config } from '../config/schema';
import { backfillDaily } from './commands/backfill';
import { JOBS, type Job } from '../domain/jobs';
import { applySchedules, scheduleId } from './commands/schedules';
import { registerSearchAttributes } from './commands/search-attributes';
import { describeHeldDown, heldDownVms } from './commands/held-down';
import { statusLines } from './commands/status';
import { initStores, previewStoreRetention, verifyStore } from './commands/store';
import { RestoreUsageError, restoreTestStatusLines, runRestoreCommand } from './commands/restore';
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
  schedules apply                       create or update the Temporal Schedules from config (idempotent)
  schedules list                        show each schedule: spec, paused, next and recent runs
  schedules pause|unpause <job>         pause or resume a job's schedule until the next apply (job: daily|weekly)
  trigger <job>                         fire a job's schedule now (one run; overlap policy applies)
  backfill daily --from DATE --to DATE  one daily run per date, one after the other
  status                                last run of each job, and what is running now with its progress
  search-attributes register            register BackupJob, BackupPeriod, BackupResult in the namespace
                                        (once per cluster; the dev server of the demo and tests has them)
  store init                            create the backup roots (supim.destinationRoot, store.root) with the
                                        marker without which runs refuse to write (an unmounted disk)
  store verify [--vm NAME ...]          re-read every stored VM image set and compare it with its manifest
                                        (size, SHA-256), on the backup host, without Temporal; exit 0 only
                                        if no set is damaged
  store retention [--vm NAME ...]       what the store's retention policy keeps and would delete now, and
                                        why (deletes nothing)
  config check                          validate the config file and print it
  restore vm <vm> --as NAME [--set STAMP] [--start] [--keep-network] [--json]
                                        push a stored set to the hypervisor (SHA-256 checked on arrival) and
                                        define it as a new domain NAME (off, network link down); see README
  restore vm <vm> --set STAMP --replace [--stop] [--json]
                                        put a stored set in place of the VM's disks (VM shut off, or --stop);
                                        old disks kept as <file>.before-restore-<stamp>
  restore day <yyyy-ddd> [--to PATH] [--host KEY] [--overwrite] [--json]
                                        a SUPIM day from the store back to the compute host; existing files
                                        are listed and left alone unless --overwrite
  restore test [<vm>] [--json]          boot-test the newest set of a VM (default: tested longest ago)

The config file is --config, else $CLUSTER_BACKUP_CONFIG, else ./cluster-backup.yaml.`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string' },
      date: { type: 'string' },
      vm: { type: 'string', multiple: true },
      from: { type: 'string' },
      to: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
      set: { type: 'string' },
      as: { type: 'string' },
      start: { type: 'boolean' },
      stop: { type: 'boolean' },
      replace: { type: 'boolean' },
      'keep-network': { type: 'boolean' },
      host: { type: 'string' },
      overwrite: { type: 'boolean' },
    },
  });
  if (values.help || positionals.length === 0) {
    console.log(USAGE);
    return values.help ? 0 : 2;
  }
  const configFile = values.config ?? process.env.CLUSTER_BACKUP_CONFIG ?? 'cluster-backup.yaml';
  const command = positionals.join(' ');
  const withClient = async <T>(use: (client: Client, config: Config) => Promise<T>): Promise<T> => {
    const config = loadConfig(configFile);
    const { client, close } = await connectClient(config);
    try {
      return await use(client, config);
    } finally {
      await close();
    }
  };
  /** Waits for a run and prints its summary; exit code 0 only when the summary says ok. */
  const waitAndPrint = async <S extends { ok: boolean }>(
    handle: { workflowId: string; firstExecutionRunId: string; result(): Promise<S> },
    format: (summary: S) => string,
  ): Promise<number> => {
    if (!values.json) console.error(`workflow ${handle.workflowId} (run ${handle.firstExecutionRunId}); waiting...`);
    const summary = await handle.result();
    console.log(values.json ? JSON.stringify(summary, null, 2) : format(summary));
    return summary.ok ? 0 : 1;
  };
  const job = positionals[positionals.length - 1] as Job;
  const needJob = () => {
    if (!JOBS.includes(job)) throw new UsageError(`name a job: ${JOBS.join(' or ')}`);
    return job;
  };

  if (positionals[0] === 'restore') {
    return runRestoreCommand(positionals.slice(1), { ...values, keepNetwork: values['keep-network'] }, withClient);
  }

  const commandWithJob = /^(schedules pause|schedules unpause|trigger|backfill) \S+$/.test(command);
  switch (commandWithJob ? command.replace(/ \S+$/, ' <job>') : command) {
    case 'status':
      return withClient(async (client, config) => {
        for (const line of await statusLines(client)) console.log(line);
        const held = await heldDownVms(config);
        console.log(`VMs held down now: ${held.length === 0 ? 'none' : ''}`);
        for (const record of held) console.log(`  ${describeHeldDown(record)}`);
        for (const line of await restoreTestStatusLines(config)) console.log(line);
        return 0;
      });
    case 'search-attributes register':
      return withClient(async (client) => {
        for (const r of await registerSearchAttributes(client)) console.log(`${r.name}: ${r.change}`);
        return 0;
      });
    case 'schedules apply':
      return withClient(async (client, config) => {
        for (const r of await applySchedules(client, config)) console.log(`${r.scheduleId}: ${r.change}`);
        return 0;
      });
    case 'schedules list':
      return withClient(async (client) => {
        for (const job of JOBS) {
          try {
            const d = await client.schedule.getHandle(scheduleId(job)).describe();
            const next = d.info.nextActionTimes[0]?.toISOString() ?? '-';
            const recent = d.info.recentActions.at(-1);
            console.log(
              `${d.scheduleId}: ${d.state.paused ? 'PAUSED' : 'active'}, ${JSON.stringify(d.spec.calendars?.[0] ?? {})} ${d.spec.timezone ?? ''}, next ${next}` +
                (recent ? `, last ${recent.takenAt.toISOString()} (${recent.action.workflow.workflowId})` : ''),
            );
          } catch (err) {
            if (!(err instanceof ScheduleNotFoundError)) throw err;
            console.log(`${scheduleId(job)}: not created (run: schedules apply)`);
          }
        }
        return 0;
      });
    case 'schedules pause <job>':
    case 'schedules unpause <job>':
      needJob();
      return withClient(async (client) => {
        const handle = client.schedule.getHandle(scheduleId(job));
        if (positionals[1] === 'pause') await handle.pause('paused with cluster-backup schedules pause');
        else await handle.unpause('unpaused with cluster-backup schedules unpause');
        console.log(`${handle.scheduleId}: ${positionals[1]}d`);
        return 0;
      });
    case 'trigger <job>':
      needJob();
      return withClient(async (client) => {
        await client.schedule.getHandle(scheduleId(job)).trigger();
        console.log(`${scheduleId(job)}: triggered`);
        return 0;
      });
    case 'backfill <job>':
      if (needJob() !== 'daily') throw new UsageError('backfill is for the daily job');
      if (!values.from || !values.to)
        throw new UsageError('backfill daily needs --from YYYY-MM-DD and --to YYYY-MM-DD');
      return withClient(async (client, config) => {
        const runs = await backfillDaily(client, config, values.from!, values.to!, (date, summary) =>
          console.log(
            `${date}: ${summary.ok ? 'OK' : 'FAILED'} ${summary.days.map((d) => `${d.day.label} ${d.status}`).join(', ')}`,
          ),
        );
        return runs.every((r) => r.ok) ? 0 : 1;
      });
    case 'worker':
      await runWorker(configFile);
      return 0;
    case 'store init':
      await initStores(loadConfig(configFile), (line) => console.log(line));
      return 0;
    case 'store verify': {
      const { ok } = await verifyStore(loadConfig(configFile), values.vm, (line) => console.log(line));
      return ok ? 0 : 1;
    }
    case 'store retention':
      await previewStoreRetention(loadConfig(configFile), values.vm, (line) => console.log(line));
      return 0;
    case 'config check': {
      const config = loadConfig(configFile);
      console.log(JSON.stringify(config, null, 2));
      return 0;
    }
    case 'run daily':
      return withClient(async (client, config) =>
        waitAndPrint(await startDaily(client, config, values.date), formatDailySummary),
      );
    case 'run vms':
      return withClient(async (client, config) =>
        waitAndPrint(await startWeekly(client, config, values.vm), formatWeeklySummary),
      );
    default:
      console.error(`unknown command: ${command}\n\n${USAGE}`);
      return 2;
  }
}

class UsageError extends Error {}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof ConfigError || err instanceof UsageError || err instanceof RestoreUsageError) {
      console.error(err.message);
      process.exit(2);
    }
    console.error(`error: ${(err as Error).stack ?? String(err)}`);
    process.exit(1);
  },
);
