/**
 * The embedded default, end to end on one machine: a local Temporal dev server (SQLite under .data/),
 * a sandbox compute host (real sshd on loopback with generated keys and SUPIM-like data), a sandbox
 * hypervisor (real libvirtd + QEMU with two tiny guests, reached over its own sshd), the worker, the
 * schedules, one daily and one weekly run with their summaries and reports (outbox).
 * `--keep-running` leaves it all up for the Web UI; `--no-vms` skips the hypervisor part; `--data-dir DIR`
 * keeps the state elsewhere than .data/demo and `--any-ports` takes free ports (both for tests).
 */
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { userInfo } from 'node:os';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { stringify } from 'yaml';
import { loadConfig } from '../config/load';
import { isoDateInZone, julianDaysEndingOn } from '../domain/julian-day';
import { renderPathTemplate, templateRoot } from '../domain/path-template';
import { weeklyProgress } from './commands/weekly-progress';
import { createWorker } from '../worker/create-worker';
import { formatDailySummary, startDaily } from './commands/run-daily';
import { formatWeeklySummary, startWeekly } from './commands/run-vms';
import { formatRestoreTest, startRestoreTest } from './commands/restore';
import { applySchedules } from './commands/schedules';
import { initStores } from './commands/store';
import { repositoryLine } from './demo-repository';
import { connectClient } from './commands/temporal-client';
import { GUEST_READY, startHypervisor, type SandboxHypervisor } from './sandbox/libvirt-host';
import { freePort } from './sandbox/processes';
import { folderOwnedBy, startSshHost, type SandboxSshHost } from './sandbox/sshd-host';
import { writeSupimDay } from './sandbox/supim-data';
import { DEMO_DATA_DIR } from './sandbox/paths';
import { startDevServer } from './sandbox/temporal-dev-server';

const TIME_ZONE = 'America/Sao_Paulo';
const GUESTS = ['cbtest-web', 'cbtest-db'];
/** The second hypervisor's guest: a cluster has several hypervisors, and one weekly run covers them all. */
const SECOND_GUEST = 'cbtest-batch';

/** The usual port when it is free (the Web UI at :8233 as the docs say), else any free one. */
async function portOr(preferred: number): Promise<number> {
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
  const { values } = parseArgs({
    options: {
      'keep-running': { type: 'boolean', default: false },
      'no-vms': { type: 'boolean', default: false },
      // For tests: their own state folder and any free ports, so they never touch the operator's demo.
      'data-dir': { type: 'string', default: DEMO_DATA_DIR },
      'any-ports': { type: 'boolean', default: false },
    },
  });
  const withVms = !values['no-vms'];
  const dataDir = resolve(values['data-dir']);
  const port = (preferred: number) => (values['any-ports'] ? freePort() : portOr(preferred));
  mkdirSync(dataDir, { recursive: true });
  const step = (text: string) => console.log(`\n== ${text}`);
  const stops: (() => Promise<void>)[] = [];

  try {
    step('Temporal dev server');
    const server = await startDevServer({
      dbFile: join(dataDir, 'temporal.db'),
      logFile: join(dataDir, 'temporal.log'),
      port: await port(7233),
      uiPort: await port(8233),
    });
    stops.push(() => server.stop());
    console.log(`gRPC ${server.address}, Web UI ${server.uiUrl}, state in ${join(dataDir, 'temporal.db')}`);

    step('sandbox compute host (OpenSSH sshd on loopback, generated keys, host key pinned in known_hosts)');
    const user = process.getuid?.() === 0 ? 'supim' : userInfo().username;
    const compute = await startSshHost({ dir: join(dataDir, 'compute-ssh'), address: '127.0.0.2', user });
    stops.push(() => compute.stop());
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

    let hypervisor: SandboxHypervisor | undefined;
    let hypervisorSsh: SandboxSshHost | undefined;
    let second: SandboxHypervisor | undefined;
    let secondSsh: SandboxSshHost | undefined;
    if (withVms) {
      step(
        `two sandbox hypervisors: libvirtd + QEMU (software emulation), guests ${GUESTS.join(', ')} on one, ${SECOND_GUEST} on the other`,
      );
      hypervisor = await startHypervisor(join(dataDir, 'libvirt'));
      stops.push(() => hypervisor!.stop());
      hypervisorSsh = await startSshHost({ dir: join(dataDir, 'hypervisor-ssh'), address: '127.0.0.3' });
      stops.push(() => hypervisorSsh!.stop());
      // The second libvirtd keeps its definitions and run state apart, in a mount namespace of its own.
      second = await startHypervisor(join(dataDir, 'libvirt-b'), { isolated: true });
      stops.push(() => second!.stop());
      secondSsh = await startSshHost({ dir: join(dataDir, 'hypervisor-b-ssh'), address: '127.0.0.4' });
      stops.push(() => secondSsh!.stop());
      const guests = [
        ...(await Promise.all(GUESTS.map((name) => hypervisor!.defineGuest({ name })))),
        await second.defineGuest({ name: SECOND_GUEST }),
      ];
      for (const g of guests) await (g.name === SECOND_GUEST ? second : hypervisor).virsh('start', '--domain', g.name);
      // A guest asked to shut down before its acpid runs ignores it: no run starts before every guest is up.
      console.log('waiting for the guests to finish booting');
      await Promise.all(guests.map((g) => g.waitReady(1, 300_000)));
      for (const ssh of [hypervisorSsh, secondSsh])
        console.log(`guests running; a hypervisor reached as root@${ssh.config.host}:${ssh.config.port}`);
    }

    // The store root exists on a real backup host before the first run (its free space is checked first).
    if (withVms) mkdirSync(join(dataDir, 'backup-store', 'vms'), { recursive: true });
    // The repository's key, made once and kept with the demo's data (owner-only: the product refuses any other).
    const resticKey = join(dataDir, 'restic.key');
    if (withVms && !existsSync(resticKey))
      writeFileSync(resticKey, `${randomBytes(24).toString('base64')}\n`, { mode: 0o600 });
    const configFile = join(dataDir, 'cluster-backup.yaml');
    writeFileSync(
      configFile,
      stringify({
        temporal: { address: server.address, namespace: 'default', taskQueue: 'cluster-backup' },
        hosts: {
          // `restore day` may write back to the source folders and to compute/restored (the README's example).
          compute: {
            ...compute.config,
            restoreRoots: [templateRoot(sourceTemplate), folderOwnedBy(user, join(dataDir, 'compute', 'restored'))],
          },
          ...(hypervisorSsh && secondSsh ? { hypervisor: hypervisorSsh.config, 'hypervisor-b': secondSsh.config } : {}),
        },
        supim: {
          host: 'compute',
          sourceTemplate,
          destinationRoot: join(dataDir, 'backup-store', 'supim'),
          daysBack: 2,
          timeZone: TIME_ZONE,
          settleSeconds: 300,
        },
        ...(hypervisor && second
          ? {
              hypervisors: [
                {
                  name: 'hypervisor',
                  host: 'hypervisor',
                  uri: hypervisor.uri,
                  imageArea: join(dataDir, 'image-area'),
                  vms: GUESTS,
                  shutdownTimeoutSeconds: 60,
                  spaceMarginBytes: 64 << 20,
                },
                {
                  name: 'hypervisor-b',
                  host: 'hypervisor-b',
                  uri: second.uri,
                  imageArea: join(dataDir, 'image-area-b'),
                  vms: [SECOND_GUEST],
                  shutdownTimeoutSeconds: 60,
                  spaceMarginBytes: 64 << 20,
                },
              ],
              store: {
                root: join(dataDir, 'backup-store', 'vms'),
                spaceMarginBytes: 64 << 20,
                engine: 'restic',
                restic: { passwordFile: resticKey },
              },
              // The sandbox guests print GUEST_READY on their serial console once booted, within seconds.
              restoreTest: { pattern: GUEST_READY, timeoutSeconds: 90 },
            }
          : {}),
        schedules: { timeZone: TIME_ZONE },
        // No SMTP server in the sandbox: reports are written as .eml files here (set mail.smtp for real mail).
        mail: {
          outbox: join(dataDir, 'outbox'),
          recipients: { daily: ['operators@localhost'], weekly: ['operators@localhost'] },
          webUiBaseUrl: server.uiUrl,
        },
      }),
    );
    const config = loadConfig(configFile);
    console.log(`config: ${configFile}`);
    for (const r of await initStores(config, () => undefined)) console.log(`store root ${r.root}: ${r.change}`);

    step('worker and schedules');
    Runtime.install({ logger: new DefaultLogger('WARN') });
    const worker = await createWorker(config);
    const running = worker.run();
    stops.push(async () => {
      worker.shutdown();
      await running;
      await worker.connection.close();
    });
    const { client, close } = await connectClient(config);
    stops.push(close);
    for (const r of await applySchedules(client, config)) console.log(`schedule ${r.scheduleId}: ${r.change}`);

    step('daily run');
    const daily = await startDaily(client, config, today);
    console.log(`workflow ${daily.workflowId}: ${server.uiUrl}/namespaces/default/workflows/${daily.workflowId}`);
    const dailySummary = await daily.result();
    console.log(`\n${formatDailySummary(dailySummary)}`);
    console.log(`report: ${newestReport(config.mail.outbox!) ?? '(none)'}`);
    let ok = dailySummary.ok;

    if (withVms) {
      step(
        'weekly VM run (each VM: preflight, ACPI shutdown, overlays, start, each frozen disk into the restic repository, merge)',
      );
      const weekly = await startWeekly(client, config);
      console.log(`workflow ${weekly.workflowId}: ${server.uiUrl}/namespaces/default/workflows/${weekly.workflowId}`);
      let shown = '';
      const watch = setInterval(() => {
        weeklyProgress(client, weekly)
          .then((p) => {
            const now = p.vms.map((v) => `${v.hypervisor ? `${v.hypervisor}/` : ''}${v.vm}: ${v.step}`).join(', ');
            if (now && now !== shown) console.log(`  progress: ${(shown = now)}`);
          })
          .catch(() => undefined);
      }, 500);
      const weeklySummary = await weekly.result().finally(() => clearInterval(watch));
      console.log(`\n${formatWeeklySummary(weeklySummary)}`);
      console.log(`report: ${newestReport(config.mail.outbox!) ?? '(none)'}`);
      console.log(await repositoryLine(config));
      ok &&= weeklySummary.ok;

      step('restore test (the newest set of the VM tested longest ago, booted as a throw-away domain)');
      const test = await startRestoreTest(client, config);
      console.log(`workflow ${test.workflowId}: ${server.uiUrl}/namespaces/default/workflows/${test.workflowId}`);
      const testSummary = await test.result();
      console.log(`\n${formatRestoreTest(testSummary)}`);
      console.log(`report: ${newestReport(config.mail.outbox!) ?? '(none)'}`);
      ok &&= testSummary.ok;
    }

    step('what to look at');
    console.log(`Web UI: ${server.uiUrl} (workflows, their event histories, Schedules, pending activities)`);
    console.log(
      `  filter runs: BackupJob = "weekly" AND BackupResult != "ok" (search attributes); each activity has a summary`,
    );
    console.log(`backup store: ${join(dataDir, 'backup-store')}; reports: ${config.mail.outbox}`);
    if (withVms)
      console.log(
        `restores (README "Restoring"): npx cluster-backup --config ${configFile} restore vm cbtest-web --as cbtest-web-copy`,
      );
    console.log('Run `npm start` again: days already backed up are not copied twice; the weekly run takes new images');
    console.log('and retention keeps the newest verified sets.');
    if (values['keep-running']) {
      console.log(`\nEverything stays up. Ctrl-C to stop.`);
      await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
    }
    return ok ? 0 : 1;
  } finally {
    for (const stop of stops.reverse()) await stop().catch((err: unknown) => console.error(err));
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
