import { EXIT, jsonOption, output, vmOption, type CliCommand } from './command-kit';
import { verifyStore } from './store';

export const storeVerifyCommand: CliCommand = {
  name: ['store', 'verify'],
  groupSummary: 'the backup store of VM images, on the backup host, without Temporal',
  summary:
    're-read every stored VM image set and compare it with its manifest (size, SHA-256); with store.engine ' +
    'restic: restic check of the structure and the next data subset n/N (--full: all data); exit 0 only if ' +
    'nothing is damaged',
  define: (command) =>
    vmOption(jsonOption(command), 'verify only this VM').option(
      '--full',
      'store.engine restic: read every pack (restic check --read-data) instead of the next subset n/N',
    ),
  async run(cli, command) {
    const { json, vm, full } = command.opts<{ json: boolean; vm?: string[]; full?: boolean }>();
    const result = await verifyStore(cli.config(), vm, (line) => json || console.log(line), { full: full ?? false });
    const { ok } = result;
    if (json) output(command, result, () => []);
    return ok ? EXIT.ok : EXIT.notOk;
  },
};
