import type { Command } from 'commander';
import { formatBytes } from '../../domain/format';
import { EXIT, jsonOption, output, type CliCommand } from './command-kit';
import {
  FileRestoreRefused,
  listGuest,
  restoreFiles,
  type FileRestoreResult,
  type GuestListing,
  type GuestSelection,
} from './file-restore';
import { mountSet, unmountSet } from './file-restore-mount';

interface FileOptions {
  set?: string;
  disk?: string;
  fs?: string;
  to?: string;
  host?: string;
  overwrite?: boolean;
  json?: boolean;
}

/** --set, --disk, --fs: which stored set, which of its disks, which filesystem. */
function guestOptions(command: Command): Command {
  return command
    .option('--set <stamp>', 'the stored set (default: the newest verified one)')
    .option('--disk <target>', 'only this disk of the set (e.g. vdb; default: every disk)')
    .option(
      '--fs <device>',
      'the filesystem to read, as `restore ls` names it (default: the guest OS`s, or the only one)',
    );
}

function selection(vm: string | undefined, options: FileOptions): GuestSelection {
  return {
    vm: vm ?? '',
    ...(options.set !== undefined ? { set: options.set } : {}),
    ...(options.disk !== undefined ? { disk: options.disk } : {}),
    ...(options.fs !== undefined ? { fs: options.fs } : {}),
  };
}

/** A refusal (nothing written): printed (or as JSON), exit 1. */
function refused(command: Command, err: FileRestoreRefused): number {
  output(command, { ok: false, refused: err.message, problems: err.problems }, () => [
    `NOT RESTORED - ${err.message}; nothing was written`,
    ...err.problems.map((p) => `  ${p}`),
  ]);
  return EXIT.notOk;
}

export function formatFileRestore(r: FileRestoreResult): string[] {
  const files = r.restored.reduce((n, p) => n + p.written.length, 0);
  const bytes = r.restored.reduce((n, p) => n + p.bytes, 0);
  return [
    `restore file ${r.vm} set ${r.stamp} -> ${r.to}: ${r.ok ? 'OK' : 'NOT COMPLETE'} (${files} entr${files === 1 ? 'y' : 'ies'}, ${formatBytes(bytes)})`,
    ...r.restored.flatMap((p) => p.written.map((w) => `  restored: ${w}`)),
    ...r.overwritten.map((o) => `  overwritten: ${o}`),
    ...r.refused.map((x) => `  NOT restored: ${x.name}: ${x.why}`),
    ...r.bitsDropped.map((b) => `  setuid/setgid bits dropped: ${b}`),
  ];
}

export function formatListing(l: GuestListing): string[] {
  return [
    `${l.vm} set ${l.stamp}`,
    ...l.layout.disks.map((d) => `  disk ${d.disk}: ${d.device}`),
    ...l.layout.partitions.map((p) => `  partition ${p}`),
    ...l.layout.filesystems.map((f) => `  filesystem ${f.device}: ${f.type}`),
    `  operating system: ${l.layout.osRoots.join(', ') || 'none found (a data disk)'}`,
    ...l.layout.mounted.map((m) => `  mounted read-only: ${m.device} on ${m.mountpoint}`),
    `${l.path}:`,
    ...l.entries.map((e) => `  ${e.type.padEnd(12)} ${e.mode} ${String(e.bytes).padStart(12)}  ${e.mtime}  ${e.name}`),
  ];
}

export const restoreFileCommand: CliCommand = {
  name: ['restore', 'file'],
  summary:
    'copy files or folders out of a stored image set into a folder on this machine or, with --host, on a host ' +
    'over SSH (modes and times kept, ' +
    'an existing file never replaced without --overwrite), read-only through libguestfs, without Temporal',
  define: (command) =>
    guestOptions(jsonOption(command))
      .argument('<vm>', 'the VM whose stored set is read')
      .argument('<path...>', 'files or folders in the guest, absolute (e.g. /etc/hosts /home/alice)')
      .requiredOption('--to <dir>', 'the folder they are copied into (created 0700 if missing)')
      .option(
        '--host <key>',
        'put them on this host of the config over SSH instead (--to a path there, at or below its restoreRoots)',
      )
      .option('--overwrite', 'replace files that exist in --to (listed as overwritten)'),
  async run(cli, command) {
    const [vm, paths] = command.processedArgs as [string, string[]];
    const options = command.opts<FileOptions>();
    try {
      const result = await restoreFiles(cli.config(), {
        ...selection(vm, options),
        paths,
        to: options.to!,
        ...(options.host !== undefined && { host: options.host }),
        overwrite: options.overwrite === true,
      });
      output(command, result, () => formatFileRestore(result));
      return result.ok ? EXIT.ok : EXIT.notOk;
    } catch (err) {
      if (err instanceof FileRestoreRefused) return refused(command, err);
      throw err;
    }
  },
};

export const restoreLsCommand: CliCommand = {
  name: ['restore', 'ls'],
  summary:
    'list what a stored image set holds: its disks, partitions, filesystems, operating system, and a folder of ' +
    'the guest (default /), read-only through libguestfs, without Temporal',
  define: (command) =>
    guestOptions(jsonOption(command))
      .argument('<vm>', 'the VM whose stored set is read')
      .argument('[path]', 'a folder or file in the guest (default: /)'),
  async run(cli, command) {
    const [vm, path] = command.processedArgs as [string, string | undefined];
    try {
      const listing = await listGuest(cli.config(), selection(vm, command.opts<FileOptions>()), path ?? '/');
      output(command, listing, () => formatListing(listing));
      return EXIT.ok;
    } catch (err) {
      if (err instanceof FileRestoreRefused) return refused(command, err);
      throw err;
    }
  },
};

export const restoreMountCommand: CliCommand = {
  name: ['restore', 'mount'],
  summary:
    'mount a stored image set read-only (guestmount --ro, only this user sees into it) on an empty folder, to ' +
    'look around and copy by hand; end it with restore umount',
  define: (command) =>
    guestOptions(jsonOption(command))
      .argument('<vm>', 'the VM whose stored set is mounted')
      .argument('<mountpoint>', 'an empty folder on this machine'),
  async run(cli, command) {
    const [vm, mountpoint] = command.processedArgs as [string, string];
    const record = await mountSet(cli.config(), selection(vm, command.opts<FileOptions>()), mountpoint);
    output(command, record, () => [
      `restore mount ${record.vm} set ${record.stamp} -> ${record.mountpoint}: mounted read-only`,
      ...record.mounted.map((m) => `  ${m.device} on ${m.mountpoint}`),
      `  end it with: cluster-backup restore umount ${record.mountpoint}`,
    ]);
    return EXIT.ok;
  },
};

export const restoreUmountCommand: CliCommand = {
  name: ['restore', 'umount'],
  summary: 'unmount what restore mount mounted, and delete the temporary images it used (restic dumps)',
  define: (command) => jsonOption(command).argument('<mountpoint>', 'the folder restore mount mounted'),
  async run(cli, command) {
    const [mountpoint] = command.processedArgs as [string];
    const record = await unmountSet(cli.config(), mountpoint);
    output(command, record, () => `restore umount ${record.mountpoint}: unmounted`);
    return EXIT.ok;
  },
};
