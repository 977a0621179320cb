import { EXIT, jsonOption, output, vmOption, type CliCommand } from './command-kit';
import { previewStoreRetention } from './store';

export const storeRetentionCommand: CliCommand = {
  name: ['store', 'retention'],
  summary: "what the store's retention policy keeps and would delete now, and why (deletes nothing)",
  define: (command) => vmOption(jsonOption(command), 'only this VM'),
  async run(cli, command) {
    const { json, vm } = command.opts<{ json: boolean; vm?: string[] }>();
    const plans = await previewStoreRetention(cli.config(), vm, (line) => json || console.log(line));
    if (json) output(command, plans, () => []);
    return EXIT.ok;
  },
};
