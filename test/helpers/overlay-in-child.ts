/**
 * One overlay activity in a process of its own, so that a test can kill it with SIGKILL mid-step:
 *   node overlay-in-child.js <config.json> <activity> <args.json>
 * Every heartbeat is printed on stdout as one JSON line.
 */
import { readFileSync } from 'node:fs';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createOverlayActivities } from '../../activities/overlay';
import { createServices } from '../../activities/services';
import { SshSession } from '../../adapters/ssh/ssh-session';
import type { Config } from '../../config/schema';

async function main(): Promise<void> {
  const [configFile = '', name = '', argsJson = '[]'] = process.argv.slice(2);
  const config = JSON.parse(readFileSync(configFile, 'utf8')) as Config;
  const activities = createOverlayActivities({ services: createServices({ config, openSsh: (key) => SshSession.connect(key, config.hosts[key]!) }) });
  const activity = activities[name as keyof typeof activities] as (...args: unknown[]) => Promise<unknown>;
  const env = new MockActivityEnvironment();
  env.on('heartbeat', (details: unknown) => process.stdout.write(`${JSON.stringify(details)}\n`));
  const result = await env.run(activity, ...(JSON.parse(argsJson) as unknown[]));
  process.stdout.write(`${JSON.stringify({ result })}\n`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
