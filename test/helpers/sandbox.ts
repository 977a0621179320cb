import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities } from '../../activities';
import { createServices } from '../../activities/services';
import { initStoreRoot } from '../../adapters/local/store-root';
import { SshSession } from '../../adapters/ssh/ssh-session';
import { parseConfig } from '../../config/load';
import type { Config } from '../../config/schema';
import { startSshHost, type SandboxSshHost } from '../../scripts/sandbox/sshd-host';

export interface SupimSandbox {
  root: string;
  sourceTemplate: string;
  destinationRoot: string;
  compute: SandboxSshHost;
  config: Config;
  activities: ReturnType<typeof createActivities>;
  cleanup(): Promise<void>;
}

let nextAddress = 10 + (process.pid % 200);

/** A compute host (real sshd on its own loopback address) and a backup store, in a fresh temp folder. */
export async function supimSandbox(
  options: {
    user?: string;
    supim?: Record<string, unknown>;
    /** false: leave the backup root without its marker (as an unmounted disk). */
    initStore?: boolean;
    /** Where the sandbox's folders go (default: the OS temp folder), e.g. /dev/shm or a disk. */
    under?: string;
    /** More config sections (e.g. a store with engine restic), merged at the top level. */
    extra?: Record<string, unknown>;
    /** The compute host's loopback address (default: one of its own per sandbox, from the process id). */
    address?: string;
  } = {},
): Promise<SupimSandbox> {
  const root = mkdtempSync(join(options.under ?? tmpdir(), 'cluster-backup-test-'));
  chmodSync(root, 0o755); // a non-root remote user must be able to read the source tree
  const compute = await startSshHost({
    dir: join(root, 'compute-ssh'),
    address: options.address ?? `127.0.0.${nextAddress++}`,
    user: options.user,
  });
  const sourceTemplate = join(root, 'source', '{yyyy}', '{ddd}');
  const destinationRoot = join(root, 'backup');
  const config = parseConfig(
    {
      hosts: { compute: compute.config },
      supim: { host: 'compute', sourceTemplate, destinationRoot, settleSeconds: 0, ...options.supim },
      ...options.extra,
    },
    'test sandbox',
    root,
  );
  if (options.initStore !== false) await initStoreRoot(destinationRoot);
  const activities = createActivities({ config, services: createServices({ config, openSsh: (key) => SshSession.connect(key, config.hosts[key]!) }) });
  return {
    root,
    sourceTemplate,
    destinationRoot,
    compute,
    config,
    activities,
    cleanup: async () => {
      await compute.stop();
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/** Runs an activity function with a real activity context (heartbeats, cancellation) outside a worker. */
export function runActivity<A extends unknown[], R>(fn: (...args: A) => Promise<R>, ...args: A): Promise<R> {
  return runIn(new MockActivityEnvironment(), fn, ...args);
}

/** The same in a given environment (with heartbeat details from an earlier attempt, or listening to heartbeats). */
export function runIn<A extends unknown[], R>(
  env: MockActivityEnvironment,
  fn: (...args: A) => Promise<R>,
  ...args: A
): Promise<R> {
  return env.run(fn as (...a: unknown[]) => Promise<R>, ...args) as Promise<R>;
}
