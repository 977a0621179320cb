/**
 * A real worker that kills itself with SIGKILL around one activity, to test crash recovery:
 *   node faulty-worker.js <config.json> before|after <activityName>
 * "after" dies once the activity's work is done but before Temporal hears of it.
 */
import { DefaultLogger, Runtime } from '@temporalio/worker';
import type { Activities } from '../../activities';
import { loadConfig } from '../../config/load';
import { createWorker } from '../../worker/create-worker';

async function main(): Promise<void> {
  const [configFile = '', when, name = ''] = process.argv.slice(2);
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const die = () => process.kill(process.pid, 'SIGKILL');
  const worker = await createWorker(loadConfig(configFile), {
    wrapActivities: (activities: Activities) => {
      const original = activities[name as keyof Activities] as (...args: unknown[]) => Promise<unknown>;
      if (!original) throw new Error(`no activity ${name}`);
      return {
        ...activities,
        [name]: async (...args: unknown[]) => {
          if (when === 'before') die();
          const result = await original(...args);
          if (when === 'after') die();
          return result;
        },
      };
    },
  });
  await worker.run();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
