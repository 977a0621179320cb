/** Child process of bench/image-pull.ts: one product pull, alone in its process so its peak RSS is its own. */
import { readFileSync } from 'node:fs';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities } from '../activities';
import { createServices } from '../activities/services';
import { SshSession } from '../adapters/ssh/ssh-session';
import type { Config } from '../config/schema';
import type { VmImage } from '../domain/weekly-summary';

async function main(): Promise<void> {
  const [configFile = '', imageJson = '', stamp = ''] = process.argv.slice(2);
  const config = JSON.parse(readFileSync(configFile, 'utf8')) as Config;
  const image = JSON.parse(imageJson) as VmImage;
  const activities = createActivities({
    config,
    services: createServices({ config, openSsh: (key) => SshSession.connect(key, config.hosts[key]!) }),
  });
  const cpuBefore = process.cpuUsage();
  const start = process.hrtime.bigint();
  await new MockActivityEnvironment().run(activities.pullImage, 'bench', stamp, image);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const usage = process.resourceUsage();
  const cpu = process.cpuUsage(cpuBefore); // every thread of this process (the file sink's too), during the pull
  // CPU of the children waited for (the ssh client of transfer.bulkClient openssh, the local zstd): cutime and
  // cstime of /proc/self/stat, in clock ticks (100 per second on Linux), after the command name in parentheses.
  const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ');
  const childCpuSeconds = (Number(fields[13]) + Number(fields[14])) / 100;
  console.log(
    JSON.stringify({
      seconds,
      maxRssMiB: usage.maxRSS / 1024,
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
      childCpuSeconds,
    }),
  );
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
