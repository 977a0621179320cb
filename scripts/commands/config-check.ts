import { connectionSources, describeConnection, temporalConnection } from '../../adapters/temporal/temporal-connection';
import { EXIT, jsonOption, output, type CliCommand } from './command-kit';

export const configCheckCommand: CliCommand = {
  name: ['config', 'check'],
  groupSummary: 'the config file',
  summary:
    'validate the config file and print it with its defaults, and where Temporal is reached (which of config ' +
    'file, TEMPORAL_* environment, Temporal profile decided it); reads key files, prints no secret',
  define: jsonOption,
  async run(cli, command) {
    const config = cli.config();
    const settings = temporalConnection(config);
    const sources = connectionSources(config);
    output(
      command,
      {
        file: cli.configFile(),
        config,
        temporal: {
          address: settings.address,
          namespace: settings.namespace,
          tls: Boolean(settings.tls),
          apiKey: Boolean(settings.apiKey),
          sources,
        },
      },
      () => [
        JSON.stringify(config, null, 2),
        `config ok: ${cli.configFile()}`,
        `temporal: ${describeConnection(settings, sources)}`,
      ],
    );
    return EXIT.ok;
  },
};
