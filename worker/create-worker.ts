import { Client, Connection } from '@temporalio/client';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { NativeConnection, Worker } from '@temporalio/worker';
import { createActivities, createServices, splitByTaskQueue, type Activities } from '../activities';
import { SshSession } from '../adapters/ssh/ssh-session';
import type { Config } from '../config/schema';
import { hypervisorTaskQueues, storeTaskQueue, temporalConnection } from '../adapters/temporal/temporal-connection';

/** Written by `npm run build` (scripts/bundle-workflows.ts). */
export const WORKFLOW_BUNDLE = join(__dirname, '..', 'workflow-bundle.js');

/** One process's workers: the main task queue always, the store task queue on the backup host. */
export interface BackupWorker {
  taskQueues: string[];
  run(): Promise<void>;
  shutdown(): void;
  connection: NativeConnection;
}

/**
 * Builds the adapters from config and the workers: workflows and remote-only activities on the main task
 * queue (any machine), and, when this machine holds the backup store, its activities on the store queue.
 */
export async function createWorker(
  config: Config,
  options: { wrapActivities?: (activities: Activities, hypervisor?: string) => Activities } = {},
): Promise<BackupWorker> {
  const { namespace, ...connectionOptions } = temporalConnection(config);
  let clientConnection: Promise<Client> | undefined;
  const temporalClient = () =>
    (clientConnection ??= Connection.connect(connectionOptions).then(
      (connection) => new Client({ connection, namespace }),
    ));
  const openSsh = (hostKey: string) => {
    const host = config.hosts[hostKey];
    if (!host) throw new Error(`no host ${hostKey} in config`);
    return SshSession.connect(hostKey, host);
  };
  // The adapters the activities share, built once: mailer, image sets, hypervisor sessions, VM policies. One
  // set per hypervisor, whose activities serve that hypervisor's task queues; the main queues' drive the first.
  const activitiesFor = (hypervisor?: string) => {
    const services = createServices({ config, openSsh, ...(hypervisor !== undefined && { hypervisor }) });
    const built = createActivities({ config, temporalClient, services });
    return splitByTaskQueue(options.wrapActivities ? options.wrapActivities(built, hypervisor) : built);
  };
  const { store, remote } = activitiesFor();
  const connection = await NativeConnection.connect(connectionOptions);
  const common = {
    connection,
    namespace,
    // Lets a replacement worker pick up an abandoned activity quickly after a crash.
    shutdownGraceTime: '10 seconds',
  } as const;
  const workers = [
    await Worker.create({
      ...common,
      taskQueue: config.temporal.taskQueue,
      ...(existsSync(WORKFLOW_BUNDLE)
        ? { workflowBundle: { codePath: WORKFLOW_BUNDLE } }
        : { workflowsPath: require.resolve('../workflows') }),
      activities: remote,
    }),
  ];
  if (config.worker.storeHost) {
    workers.push(await Worker.create({ ...common, taskQueue: storeTaskQueue(config), activities: store }));
  }
  for (const { name } of config.hypervisors) {
    const queues = hypervisorTaskQueues(config, name);
    const host = activitiesFor(name);
    workers.push(await Worker.create({ ...common, taskQueue: queues.remote, activities: host.remote }));
    if (config.worker.storeHost) {
      workers.push(await Worker.create({ ...common, taskQueue: queues.store, activities: host.store }));
    }
  }
  return {
    taskQueues: workers.map((w) => w.options.taskQueue),
    connection,
    run: async () => {
      // One worker failing stops the other too: a half-serving process would look healthy and hang runs.
      const runs = workers.map((w) => w.run());
      if (config.hypervisors.length > 0) void guardianAtStart(temporalClient, config.temporal.taskQueue);
      try {
        await Promise.all(runs);
      } finally {
        for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
        await Promise.allSettled(runs);
      }
    },
    shutdown: () => {
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
    },
  };
}

/**
 * A VM left down while no worker ran (a crash, a deploy, a terminated run) is put back as soon as a worker
 * starts, without waiting for the guardian's schedule. One such run at a time, whichever worker starts it.
 */
async function guardianAtStart(temporalClient: () => Promise<Client>, taskQueue: string): Promise<void> {
  try {
    const client = await temporalClient();
    await client.workflow.start('vmGuardian', {
      taskQueue,
      workflowId: 'vm-guardian-at-worker-start',
      workflowIdConflictPolicy: 'USE_EXISTING',
    });
  } catch (err) {
    console.warn(`the guardian could not be started at worker start: ${(err as Error).message}`);
  }
}
