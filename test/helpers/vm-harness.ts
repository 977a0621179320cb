import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { resticOptions } from '../../activities/services';
import { initStoreRoot } from '../../adapters/local/store-root';
import { Restic } from '../../adapters/restic/restic';
import { parseConfig } from '../../config/load';
import type { Config } from '../../config/schema';
import type { WeeklySummary } from '../../domain/weekly-summary';
import { startWeekly } from '../../scripts/commands/run-vms';
import { connectClient } from '../../scripts/commands/temporal-client';
import {
  startHypervisor,
  type GuestOptions,
  type SandboxGuest,
  type SandboxHypervisor,
} from '../../scripts/sandbox/libvirt-host';
import { startSshHost, type SandboxSshHost } from '../../scripts/sandbox/sshd-host';
import type { DevServer } from '../../scripts/sandbox/temporal-dev-server';
import { weeklyProgress } from '../../scripts/commands/weekly-progress';
import { startSmtpServer, type TestSmtpServer } from './smtp';
import { inProcessWorker, testDevServer } from './temporal';

export interface VmHarnessOptions {
  /** Names the temp folder and the task queue. */
  name: string;
  /** The sandbox hypervisor's sshd listens here (one loopback address per test file). */
  address: string;
  /** The guests to define; `running: false` leaves one off. */
  guests: (GuestOptions & { running?: boolean })[];
  /** The hypervisor section beyond host, uri and imageArea. */
  hypervisor: Record<string, unknown>;
  /** With a backup store (initialised) under the test folder; 'restic': store.engine restic, repository made. */
  store?: boolean | 'restic';
  /** More of the store section (retention...). */
  storeSettings?: Record<string, unknown>;
  /** More top-level config sections (restoreTest...). */
  settings?: Record<string, unknown>;
  /**
   * The hypervisor in a mount namespace of its own (libvirt-host.ts; the default): no machine-wide lock, so
   * this file runs beside the other VM files. false: on the machine's shared libvirt folders, one at a time.
   */
  isolated?: boolean;
  /** The environment of the hypervisor's SSH sessions (sshd-host.ts `env`). */
  sshEnv?: Record<string, string>;
}

/**
 * A real hypervisor for a VM test file: libvirtd + QEMU with the tiny guests, an sshd in front of it, a
 * dev server, an SMTP server, the product's config and worker.
 */
export interface VmHarness {
  root: string;
  hypervisor: SandboxHypervisor;
  sshHost: SandboxSshHost;
  server: DevServer;
  smtp: TestSmtpServer;
  config: Config;
  client: Client;
  guests: Record<string, SandboxGuest>;
  imageArea: string;
  /** Waits until each named guest has booted once more (its acpid listens again). */
  rebooted(...names: string[]): Promise<void>;
  /** Starts the weekly workflow for these VMs (on the in-process worker's task queue by default). */
  runWeekly(
    vms: string[],
    taskQueue?: string,
    workflowId?: string,
  ): Promise<{ handle: WorkflowHandle; result: () => Promise<WeeklySummary> }>;
  waitForStep(handle: WorkflowHandle, vm: string, step: string): Promise<void>;
  /**
   * Terminates a weekly run as a crash would leave it: its host runs (where the VM cycles live, without
   * their compensations) and then the run itself. Returns the host runs' IDs (the VM locks' owners).
   */
  terminateRun(handle: WorkflowHandle, reason: string): Promise<string[]>;
  /** The one report a run sent (throws if none or several). */
  reportOf(workflowId: string): TestSmtpServer['messages'][number];
  stop(): Promise<void>;
}

/** A repository password the test made, owner-only (the product refuses any other mode). */
function resticPasswordFile(root: string): string {
  const file = join(root, 'restic.key');
  writeFileSync(file, `${randomBytes(24).toString('base64')}\n`, { mode: 0o600 });
  return file;
}

export function partialsUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true })
    .map(String)
    .filter((name) => name.endsWith('.partial'));
}

export async function startVmHarness(options: VmHarnessOptions): Promise<VmHarness> {
  const root = mkdtempSync(join(tmpdir(), `cluster-backup-${options.name}-`));
  const imageArea = join(root, 'images');
  if (options.store) await initStoreRoot(join(root, 'store')); // as `cluster-backup store init` does
  const [hypervisor, sshHost, server, smtp] = await Promise.all([
    startHypervisor(join(root, 'libvirt'), { isolated: options.isolated ?? true }),
    startSshHost({ dir: join(root, 'hypervisor-ssh'), address: options.address, env: options.sshEnv }),
    testDevServer(),
    startSmtpServer(mkdtempSync(join(tmpdir(), `cluster-backup-${options.name}-smtp-`))),
  ]);
  const stopHosts = async () => {
    await Promise.all([hypervisor.stop(), sshHost.stop(), server.stop(), smtp.stop()]);
    rmSync(root, { recursive: true, force: true });
  };
  try {
    return await withHosts();
  } catch (err) {
    await stopHosts(); // a harness that could not start leaves nothing running
    throw err;
  }

  async function withHosts(): Promise<VmHarness> {
    const guests: Record<string, SandboxGuest> = {};
    const boots: Record<string, number> = {};
    const rebooted = async (...names: string[]) => {
      for (const name of names) {
        boots[name] = (boots[name] ?? 0) + 1;
        await guests[name]!.waitReady(boots[name]!, 180_000); // TCG guests boot slowly on a loaded machine
      }
    };
    for (const { running = true, ...guest } of options.guests) {
      guests[guest.name] = await hypervisor.defineGuest(guest);
      if (running) await hypervisor.virsh('start', '--domain', guest.name);
    }
    await rebooted(...options.guests.filter((g) => g.running !== false).map((g) => g.name));

    const config = parseConfig(
      {
        temporal: { address: server.address, taskQueue: options.name },
        hosts: { hypervisor: sshHost.config },
        hypervisor: { host: 'hypervisor', uri: hypervisor.uri, imageArea, ...options.hypervisor },
        ...(options.store
          ? {
              store: {
                root: join(root, 'store'),
                spaceMarginBytes: 1 << 20,
                ...(options.store === 'restic'
                  ? { engine: 'restic', restic: { passwordFile: resticPasswordFile(root) } }
                  : {}),
                ...options.storeSettings,
              },
            }
          : {}),
        mail: {
          recipients: { weekly: ['ops@cluster.test'] },
          smtp: { host: '127.0.0.1', port: smtp.port, security: 'starttls', caFile: smtp.certFile },
        },
        transfer: { heartbeatTimeoutSeconds: 4 },
        ...options.settings,
      },
      `${options.name} test`,
      root,
    );
    if (options.store === 'restic') await new Restic(resticOptions(config)).init(); // as `store init` does
    const worker = await inProcessWorker(config);
    const { client, close } = await connectClient(config);
    let runs = 0;

    return {
      root,
      hypervisor,
      sshHost,
      server,
      smtp,
      config,
      client,
      guests,
      imageArea,
      rebooted,
      runWeekly: async (vms, taskQueue = config.temporal.taskQueue, workflowId = `vms-${options.name}-${++runs}`) => {
        const handle = await startWeekly(
          client,
          { ...config, temporal: { ...config.temporal, taskQueue } },
          vms,
          workflowId,
        );
        return { handle, result: () => handle.result() as Promise<WeeklySummary> };
      },
      waitForStep: async (handle, vm, step) => {
        const deadline = Date.now() + 120_000;
        while (Date.now() < deadline) {
          const progress = await weeklyProgress(client, handle).catch(() => undefined);
          if (progress?.vms.some((v) => v.vm === vm && v.step === step)) return;
          await new Promise((r) => setTimeout(r, 50));
        }
        throw new Error(`${vm} never reached ${step}`);
      },
      terminateRun: async (handle, reason) => {
        // from the server, not a query: the worker may be the thing that is gone
        const { raw } = await handle.describe();
        const children = (raw.pendingChildren ?? []).map((c) => c.workflowId ?? '').filter(Boolean);
        for (const workflowId of children) await client.workflow.getHandle(workflowId).terminate(reason);
        await handle.terminate(reason);
        return children;
      },
      reportOf: (workflowId) => {
        const found = smtp.messages.filter((m) => String(m.text).includes(`Workflow ${workflowId} `));
        if (found.length !== 1)
          throw new Error(`reports for ${workflowId}: ${found.map((m) => m.subject).join(' | ') || 'none'}`);
        return found[0]!;
      },
      stop: async () => {
        await close();
        await worker.stop();
        await stopHosts();
      },
    };
  }
}
