import { EXIT, jsonOption, output, type CliCommand } from './command-kit';
import { initStores } from './store';

export const storeInitCommand: CliCommand = {
  name: ['store', 'init'],
  groupSummary: 'the backup store of VM images, on the backup host, without Temporal',
  summary:
    'create the backup roots (supim.destinationRoot, store.root) with the marker without which runs refuse to ' +
    'write (so an unmounted disk is never filled by mistake); run once, with the disk mounted',
  define: (command) => jsonOption(command),
  async run(cli, command) {
    const { json } = command.opts<{ json: boolean }>();
    const roots = await initStores(cli.config(), (line) => json || console.log(line));
    if (json) output(command, { roots }, () => []);
    return EXIT.ok;
  },
};
