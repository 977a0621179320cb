import { runWorker } from '../../worker/main';
import { EXIT, type CliCommand } from './command-kit';

export const workerCommand: CliCommand = {
  name: ['worker'],
  summary: 'run the Temporal worker until SIGINT/SIGTERM (keep it running: deploy/cluster-backup-worker.service)',
  async run(cli) {
    await runWorker(cli.configFile());
    return EXIT.ok;
  },
};
