/**
 * A pull in a process of its own, so that a test can kill it with SIGKILL mid-file:
 *   node pull-in-child.js <config.json> <image.json> <stamp>
 * Every heartbeat is printed on stdout as one JSON line.
 */
import { readFileSync } from 'node:fs';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities } from '../../activities';
import { createServices } from '../../activities/services';
import { SshSession } from '../../adapters/ssh/ssh-session';
import type { Config } from '../../config/schema';
import type { VmImage } from '../../domain/weekly-summary';

async function main(): Promise<void> {
  const [configFile = '', imageJson = '', stamp = ''] = process.argv.slice(2);
  const config = JSON.parse(readFileSync(configFile, 'utf8')) as Config;
  const activities = createActivities({ config, services: createServices({ config, openSsh: (key) => SshSession.connect(key, config.hosts[key]!) }) });
  const env = new MockActivityEnvironment();
  env.on('heartbeat', (details: unknown) => process.stdout.write(`${JSON.stringify(details)}\n`));
  await env.run(activities.pullImage, 'alpha', stamp, JSON.parse(imageJson) as VmImage);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
