import { Client, Connection } from '@temporalio/client';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { NativeConnection, Worker } from '@temporalio/worker';
import { createActivities, type Activities } from '../activities';
import { SshSession } from '../activities/adapters/ssh/ssh-session';
import type { Config } from '../config/schema';
import { temporalConnection } from '../config/temporal-connection';

/** Written by `npm run build` (scripts/bundle-workflows.ts). */
export const WORKFLOW_BUNDLE = join(__dirname, '..', 'workflow-bundle.js');

/** Builds the adapters from config and a worker that runs every workflow and activity on the task queue. */
export async function createWorker(
  config: Config,
  options: { wrapActivities?: (activities: Activities) => Activities } = {},
): Promise<{ worker: Worker; connection: NativeConnection }> {
  const { namespace, ...connectionOptions } = temporalConnection(config);
  let clientConnection: Promise<Client> | undefined;
  const built = createActivities({
    config,
    temporalClient: () =>
      (clientConnection ??= Connection.connect(connectionOptions).then(
        (connection) => new Client({ connection, namespace }),
      )),
    openSsh: (hostKey) => {
      const host = config.hosts[hostKey];
      if (!host) throw new Error(`no host ${hostKey} in config`);
      return SshSession.connect(hostKey, host);
    },
  });
  const activities = options.wrapActivities ? options.wrapActivities(built) : built;
  const connection = await NativeConnection.connect(connectionOptions);
  const worker = await Worker.create({
    connection,
    namespace,
    taskQueue: config.temporal.taskQueue,
    ...(existsSync(WORKFLOW_BUNDLE)
      ? { workflowBundle: { codePath: WORKFLOW_BUNDLE } }
      : { workflowsPath: require.resolve('../workflows') }),
    activities,
    // Lets a replacement worker pick up an abandoned activity quickly after a crash.
    shutdownGraceTime: '10 seconds',
  });
  return { worker, connection };
}
