import { EXIT, type CliCommand } from './command-kit';

export const workerCommand: CliCommand = {
  name: ['worker'],
  summary: 'run the Temporal worker until SIGINT/SIGTERM (keep it running: deploy/cluster-backup-worker.service)',
  async run(cli) {
    // Loaded here: the worker's native runtime would slow every other command's start.
    const { runWorker } = await import('../../worker/main');
    await runWorker(cli.configFile());
    return EXIT.ok;
  },
};
