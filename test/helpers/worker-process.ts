import type { ChildProcess } from 'node:child_process';
import { openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import type { Config } from '../../config/schema';
import { startChild } from '../../scripts/sandbox/processes';
import { CLI_JS } from '../../scripts/sandbox/paths';

export function writeConfigFile(dir: string, config: Config): string {
  const file = join(dir, 'config.json');
  writeFileSync(file, JSON.stringify(config, null, 2));
  return file;
}

/** The real worker (`cluster-backup worker`) in its own process, so a test can kill -9 it. */
export function spawnWorker(configFile: string, logFile: string): ChildProcess {
  const log = openSync(logFile, 'a');
  return startChild(process.execPath, [CLI_JS, '--config', configFile, 'worker'], {
    stdio: ['ignore', log, log],
  });
}

/** Waits until the workflow's pending activity has heartbeated details that satisfy `ready`. */
export async function waitForHeartbeat<T>(
  handle: WorkflowHandle,
  ready: (details: T) => boolean,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const { raw } = await handle.describe();
    for (const activity of raw.pendingActivities ?? []) {
      const payload = activity.heartbeatDetails?.payloads?.[0];
      if (!payload) continue;
      const details = defaultPayloadConverter.fromPayload<T>(payload);
      if (ready(details)) return details;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`no matching heartbeat within ${timeoutMs} ms`);
}
