import type { Job } from '../../domain/jobs';
import { EXIT, jsonOption, output, type CliCommand } from './command-kit';
import { scheduleId } from './schedules';
import { jobArgument } from './schedules-pause';

export const triggerCommand: CliCommand = {
  name: ['trigger'],
  summary: "fire a job's schedule now (one run; the overlap policy applies: a run still going is not doubled)",
  define: (command) => jsonOption(command).addArgument(jobArgument()),
  run: (cli, command) =>
    cli.withClient(async (client) => {
      const id = scheduleId(command.processedArgs[0] as Job);
      await client.schedule.getHandle(id).trigger();
      output(command, { scheduleId: id, triggered: true }, () => `${id}: triggered`);
      return EXIT.ok;
    }),
};
