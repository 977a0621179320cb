import { Argument } from 'commander';
import { JOBS, type Job } from '../../domain/jobs';
import { EXIT, jsonOption, output, type CliCommand } from './command-kit';
import { scheduleId } from './schedules';

export const jobArgument = () => new Argument('<job>', 'the job').choices(JOBS);

function pauseCommand(paused: boolean): CliCommand {
  const verb = paused ? 'pause' : 'unpause';
  return {
    name: ['schedules', verb],
    summary: paused
      ? "pause a job's schedule until the next apply (set schedules.<job>.paused in config to keep it paused)"
      : "resume a job's paused schedule",
    define: (command) => jsonOption(command).addArgument(jobArgument()),
    run: (cli, command) =>
      cli.withClient(async (client) => {
        const handle = client.schedule.getHandle(scheduleId(command.processedArgs[0] as Job));
        if (paused) await handle.pause(`paused with cluster-backup schedules ${verb}`);
        else await handle.unpause(`unpaused with cluster-backup schedules ${verb}`);
        output(command, { scheduleId: handle.scheduleId, paused }, () => `${handle.scheduleId}: ${verb}d`);
        return EXIT.ok;
      }),
  };
}

export const schedulesPauseCommand = pauseCommand(true);
export const schedulesUnpauseCommand = pauseCommand(false);
