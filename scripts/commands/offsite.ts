import { resticOptions } from '../../activities/services';
import { initOffsite, offsiteEnvOf } from '../../adapters/restic/offsite';
import type { Config } from '../../config/schema';
import { EXIT, jsonOption, output, UsageError, type CliCommand } from './command-kit';

/** Creates the named off-site repositories (all of them without names), each with the primary's chunker parameters. */
export async function initOffsites(
  config: Config,
  names: readonly string[],
  print: (line: string) => void,
): Promise<{ repository: string; location: string; result: 'created' | 'existed' }[]> {
  const all = Object.keys(config.offsite);
  if (!all.length) throw new UsageError('the config has no offsite section: nothing to initialise');
  const chosen = names.length ? [...names] : all;
  for (const name of chosen)
    if (!all.includes(name))
      throw new UsageError(`no off-site repository ${JSON.stringify(name)} (have: ${all.join(', ')})`);
  const primary = resticOptions(config);
  const done = [];
  for (const name of chosen) {
    const dest = offsiteEnvOf(config, name);
    const result = await initOffsite(dest, primary);
    print(
      `offsite ${name} (${dest.repository}): ${result === 'created' ? 'created, chunker parameters of the primary' : 'exists already, left as it is'}`,
    );
    done.push({ repository: name, location: dest.repository, result });
  }
  return done;
}

export const offsiteInitCommand: CliCommand = {
  name: ['offsite', 'init'],
  groupSummary: 'the off-site restic repositories (3-2-1) the store is copied to',
  summary:
    'create the off-site repositories (restic init --repository-version 2 --copy-chunker-params from the ' +
    'primary, so data deduplicates alike there); one that exists is left as it is. Default: every one in config',
  define: (command) => jsonOption(command.argument('[names...]', 'off-site repositories (keys of offsite)')),
  async run(cli, command) {
    const { json } = command.opts<{ json: boolean }>();
    const names = (command.args ?? []) as string[];
    const repositories = await initOffsites(cli.config(), names, (line) => json || console.log(line));
    output(command, { repositories }, () => []);
    return EXIT.ok;
  },
};
