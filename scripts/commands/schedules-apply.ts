import { EXIT, jsonOption, output, type CliCommand } from './command-kit';
import { applySchedules } from './schedules';

export const schedulesApplyCommand: CliCommand = {
  name: ['schedules', 'apply'],
  groupSummary: "the Temporal Schedules that start the jobs (config's schedules section)",
  summary: 'create or update the Temporal Schedules from config (idempotent: an unchanged config changes nothing)',
  define: jsonOption,
  run: (cli, command) =>
    cli.withClient(async (client, config) => {
      const results = await applySchedules(client, config);
      output(command, results, () => results.map((r) => `${r.scheduleId}: ${r.change}`));
      return EXIT.ok;
    }),
};
