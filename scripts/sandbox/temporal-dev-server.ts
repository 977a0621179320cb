import type { ChildProcess } from 'node:child_process';
import { Connection } from '@temporalio/client';
import { mkdirSync, openSync } from 'node:fs';
import { resolve } from 'node:path';
import { DEV_SERVER_SEARCH_ATTRIBUTE_FLAGS } from '../commands/search-attributes';
import { TEMPORAL_CLI } from './paths';
import { freePort, startChild, stopProcess, waitForPort } from './processes';

export interface DevServer {
  address: string;
  uiUrl: string;
  namespace: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

export interface DevServerOptions {
  /** SQLite file: workflows survive a server restart. */
  dbFile: string;
  logFile: string;
  port?: number;
  uiPort?: number;
  namespace?: string;
  /** Register the backup search attributes at start (default); false: a namespace without them. */
  searchAttributes?: boolean;
}

/** `temporal server start-dev` on loopback, persisted to SQLite, as a child of this process. */
export async function startDevServer(options: DevServerOptions): Promise<DevServer> {
  // A port found free can be taken by another process before the server binds it (tests start servers in
  // parallel): a server that exits while starting is started again on new ports, unless the ports were given.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startDevServerOnce(options);
    } catch (err) {
      if (!(err instanceof ServerExited) || attempt >= 3 || options.port || options.uiPort) throw err;
    }
  }
}

class ServerExited extends Error {}

async function startDevServerOnce(options: DevServerOptions): Promise<DevServer> {
  const port = options.port ?? (await freePort());
  const uiPort = options.uiPort ?? (await freePort());
  const namespace = options.namespace ?? 'default';
  mkdirSync(resolve(options.dbFile, '..'), { recursive: true });
  const log = openSync(options.logFile, 'a');
  const child = startChild(
    TEMPORAL_CLI,
    [
      'server',
      'start-dev',
      '--ip',
      '127.0.0.1',
      '--port',
      String(port),
      '--ui-port',
      String(uiPort),
      '--http-port',
      String(await freePort()),
      '--metrics-port',
      String(await freePort()),
      '--db-filename',
      options.dbFile,
      '--namespace',
      namespace,
      '--log-level',
      'warn',
      '--ui-disable-news-fetch',
      ...(options.searchAttributes === false ? [] : DEV_SERVER_SEARCH_ATTRIBUTE_FLAGS),
    ],
    { stdio: ['ignore', log, log] },
  );
  try {
    await waitForPort('127.0.0.1', port, 30_000, child);
    await waitForHealthyFrontend(`127.0.0.1:${port}`, namespace, 60_000, child);
  } catch (err) {
    await stopProcess(child);
    throw child.exitCode !== null || child.signalCode !== null ? new ServerExited(String(err)) : err;
  }
  return {
    address: `127.0.0.1:${port}`,
    uiUrl: `http://127.0.0.1:${uiPort}`,
    namespace,
    process: child,
    stop: () => stopProcess(child),
  };
}

/**
 * The port opens before the frontend serves ("Frontend is not healthy yet"), and on a loaded machine the
 * frontend answers before its namespace registry knows the namespace ("Namespace not found"): wait until a
 * call that goes through the registry answers.
 */
async function waitForHealthyFrontend(
  address: string,
  namespace: string,
  timeoutMs: number,
  child: ChildProcess,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the Temporal dev server at ${address} exited (${child.exitCode})`);
    try {
      const connection = await Connection.connect({ address, connectTimeout: 2_000 });
      try {
        await connection.workflowService.getSystemInfo({});
        await connection.workflowService.listWorkflowExecutions({ namespace, pageSize: 1 });
        return;
      } finally {
        await connection.close();
      }
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`the Temporal dev server at ${address} never became healthy: ${err}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}
