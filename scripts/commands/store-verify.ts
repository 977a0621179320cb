import { EXIT, jsonOption, output, vmOption, type CliCommand } from './command-kit';
import { verifyStore } from './store';

export const storeVerifyCommand: CliCommand = {
  name: ['store', 'verify'],
  groupSummary: 'the backup store of VM images, on the backup host, without Temporal',
  summary:
    're-read every stored VM image set and compare it with its manifest (size, SHA-256); exit 0 only if no set ' +
    'is damaged',
  define: (command) => vmOption(jsonOption(command), 'verify only this VM'),
  async run(cli, command) {
    const { json, vm } = command.opts<{ json: boolean; vm?: string[] }>();
    const { ok, checks } = await verifyStore(cli.config(), vm, (line) => json || console.log(line));
    if (json) output(command, { ok, checks }, () => []);
    return ok ? EXIT.ok : EXIT.notOk;
  },
};
