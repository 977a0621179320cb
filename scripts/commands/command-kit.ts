import { isGrpcServiceError, type Client } from '@temporalio/client';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { ConfigError, loadConfig } from '../../config/load';
import type { Config } from '../../config/schema';
import { TemporalConnectionError, temporalConnection } from '../../adapters/temporal/temporal-connection';
import { SecretFileExposedError } from '../../adapters/local/secret-file';
import { calendarDay } from '../../domain/julian-day';
import { connectClient } from './temporal-client';

/** The CLI's exit codes (README: "Exit codes"). Scripts and systemd units rely on them: keep them stable. */
export const EXIT = {
  /** Done, and everything it checked or ran is OK. */
  ok: 0,
  /** Done, but the run was not OK or the check found damage (the output says what). */
  notOk: 1,
  /** Unknown command or option, bad argument, an invalid or unreadable config file, Temporal profile or key file. */
  usage: 2,
  /** Temporal could not be reached (address, TLS, API key, or the server is down). */
  unreachable: 3,
  /** Anything else: an error from Temporal, the hosts or the OS (the message says which). */
  error: 4,
} as const;

/** A command line that cannot mean anything: exit 2, the message says why. */
export class UsageError extends Error {
  override name = 'UsageError';
}

export class TemporalUnreachableError extends Error {
  override name = 'TemporalUnreachableError';
  constructor(address: string, cause: unknown) {
    super(`cannot reach Temporal at ${address}: ${(cause as Error).message ?? String(cause)}`, { cause });
  }
}

/** gRPC UNAVAILABLE: the server went away (or never answered) after the connection was made. */
const GRPC_UNAVAILABLE = 14;

export function exitCodeOf(err: unknown): number {
  if (err instanceof UsageError || err instanceof ConfigError || err instanceof InvalidArgumentError) return EXIT.usage;
  // Refused connection settings (plaintext to a remote address, a key file others can read): fix the config.
  if (err instanceof TemporalConnectionError || err instanceof SecretFileExposedError) return EXIT.usage;
  if (err instanceof TemporalUnreachableError) return EXIT.unreachable;
  if (isGrpcServiceError(err) && err.code === GRPC_UNAVAILABLE) return EXIT.unreachable;
  return EXIT.error;
}

/** What every command gets: the config file named on the command line, and a Temporal client on demand. */
export interface Cli {
  configFile(): string;
  config(): Config;
  /** Connects with the config's Temporal settings, runs `use`, closes; a failed connection exits 3. */
  withClient<T>(use: (client: Client, config: Config) => Promise<T>): Promise<T>;
}

/**
 * One CLI command. Adding a command is adding a module that exports one of these and one line in
 * scripts/commands/index.ts.
 */
export interface CliCommand {
  /** The words that name it: ['status'], or ['run', 'daily'] (the first word then names a group). */
  name: readonly [string] | readonly [string, string];
  /** One line for `--help`. */
  summary: string;
  /** For a two-word command: one line about its group, used when the group is new. */
  groupSummary?: string;
  /** Arguments and options (`--help` is there already; add `--json` with jsonOption). */
  define?(command: Command): void;
  /** Does the work and prints; returns the exit code (EXIT). */
  run(cli: Cli, command: Command): Promise<number>;
}

export function createCli(configFile: () => string): Cli {
  const config = () => loadConfig(configFile());
  return {
    configFile,
    config,
    async withClient(use) {
      const loaded = config();
      let address: string;
      try {
        address = temporalConnection(loaded).address;
      } catch (err) {
        // A TLS or API key file that cannot be read, a Temporal profile that does not exist: exit 2, not 3.
        throw new UsageError(`Temporal connection settings: ${(err as Error).message}`);
      }
      let connected: Awaited<ReturnType<typeof connectClient>>;
      try {
        connected = await connectClient(loaded);
      } catch (err) {
        throw new TemporalUnreachableError(address, err);
      }
      try {
        return await use(connected.client, loaded);
      } finally {
        await connected.close();
      }
    },
  };
}

/** `--json`: the command prints one JSON document on stdout instead of text (progress goes to stderr). */
export function jsonOption(command: Command): Command {
  return command.option('--json', 'print the result as JSON (one document on stdout)');
}

/** Prints JSON with --json, else the text lines. */
export function output(command: Command, result: unknown, text: () => string | readonly string[]): void {
  if (command.opts<{ json?: boolean }>().json) console.log(JSON.stringify(result, null, 2));
  else {
    const lines = text();
    console.log(typeof lines === 'string' ? lines : lines.join('\n'));
  }
}

/** `--vm NAME`, repeatable. */
export function vmOption(command: Command, what: string): Command {
  return command.option('--vm <name>', `${what} (repeat for several; default: all)`, (v, all: string[] = []) => [
    ...all,
    v,
  ]);
}

/** An option or argument that must be a calendar date YYYY-MM-DD. */
export function isoDate(value: string): string {
  try {
    calendarDay(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
  return value;
}

export function dateOption(flags: string, description: string, required = false): Option {
  const option = new Option(flags, description).argParser(isoDate);
  return required ? option.makeOptionMandatory() : option;
}
