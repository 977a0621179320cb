import { temporalConnection } from '../../adapters/temporal/temporal-connection';
import { EXIT, TemporalUnreachableError, type CliCommand } from './command-kit';

export const workerCommand: CliCommand = {
  name: ['worker'],
  summary: 'run the Temporal worker until SIGINT/SIGTERM (keep it running: deploy/cluster-backup-worker.service)',
  async run(cli) {
    // Loaded here: the worker's native runtime would slow every other command's start.
    const [{ runWorker }, { TransportError }] = await Promise.all([
      import('../../worker/main'),
      import('@temporalio/worker'),
    ]);
    try {
      await runWorker(cli.configFile());
    } catch (err) {
      // The worker connects first: a transport error means the frontend was not reached (exit 3).
      if (err instanceof TransportError)
        throw new TemporalUnreachableError(temporalConnection(cli.config()).address, err);
      throw err;
    }
    return EXIT.ok;
  },
};
