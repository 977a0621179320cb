#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { COMMANDS } from './commands';
import { createCli, EXIT, exitCodeOf, type CliCommand } from './commands/command-kit';

const EXIT_CODES_HELP = `
Exit codes:
  0  ok: done, and every run or check it made is OK
  1  not OK: a run did not back up everything, or a check found damage (the output says what)
  2  usage or config error: unknown command or option, bad argument, invalid or unreadable config file
     (or Temporal profile, TLS or API key file)
  3  cannot reach Temporal (address, TLS, API key, or the server is down)
  4  any other error (from Temporal, the hosts or the OS; the message says which)

The config file is --config, else $CLUSTER_BACKUP_CONFIG, else ./cluster-backup.yaml. Temporal is reached
with its temporal section on top of TEMPORAL_* variables and the Temporal profile (see README).`;

/** The program with every command of COMMANDS; errors throw (exitOverride) so that main picks the exit code. */
function buildProgram(commands: readonly CliCommand[], onExitCode: (code: number) => void): Command {
  const program = new Command('cluster-backup')
    .description('Durable backups of the cluster, orchestrated by Temporal: daily SUPIM-DAVS data, weekly VM images.')
    .option('--config <file>', 'the config file (default: $CLUSTER_BACKUP_CONFIG, else ./cluster-backup.yaml)')
    .addHelpText('after', EXIT_CODES_HELP)
    .showHelpAfterError('(add --help for usage)')
    .exitOverride();
  const cli = createCli(
    () => program.opts<{ config?: string }>().config ?? process.env.CLUSTER_BACKUP_CONFIG ?? 'cluster-backup.yaml',
  );
  const groups = new Map<string, Command>();
  for (const definition of commands) {
    let parent = program;
    if (definition.name.length === 2) {
      const [group] = definition.name;
      parent =
        groups.get(group) ??
        program
          .command(group)
          .description(definition.groupSummary ?? `${group} commands`)
          .showHelpAfterError('(add --help for usage)')
          .exitOverride();
      groups.set(group, parent);
    }
    const command = parent
      .command(definition.name.at(-1)!)
      .description(definition.summary)
      .showHelpAfterError('(add --help for usage)')
      .exitOverride();
    definition.define?.(command);
    command.action(async () => onExitCode(await definition.run(cli, command)));
  }
  return program;
}

async function main(argv: string[]): Promise<number> {
  let code: number = EXIT.ok;
  const program = buildProgram(COMMANDS, (c) => (code = c));
  if (argv.length === 0) {
    program.outputHelp({ error: true });
    return EXIT.usage;
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander printed the message or the help already; a group named without its command is a usage error.
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    const exit = exitCodeOf(err);
    console.error(exit === EXIT.error ? `error: ${(err as Error).stack ?? String(err)}` : (err as Error).message);
    return exit;
  }
  return code;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(EXIT.error);
  },
);
