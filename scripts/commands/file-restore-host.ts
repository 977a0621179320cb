import { mkdir } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { DUMP_FOLDER } from '../../adapters/image-sets/set-images';
import type { StagedEntry } from '../../adapters/local/staged-tree';
import { SshSession } from '../../adapters/ssh/ssh-session';
import { makeFolders } from '../../adapters/transfer/stream-upload';
import { remoteConflicts, uploadStagedTree } from '../../adapters/transfer/tree-upload';
import type { Config } from '../../config/schema';
import { remoteTarget, restoreRootOf, restoreRoots } from '../../config/restore-roots';
import { UsageError } from './command-kit';
import type { RestoreDestination } from './file-restore-destination';

/** A one-name entry, to ask the host about a single path. */
const single = (kind: StagedEntry['kind']): StagedEntry[] => [
  { rel: Buffer.alloc(0), kind, mode: 0, atime: new Date(0), mtime: new Date(0), bytes: 0 },
];

/**
 * `restore file --host KEY --to PATH`: the files go to a host of the config over SSH (its host key verified),
 * at or below one of its restore roots (hosts.KEY.restoreRoots), staged first in the store's private
 * file-restore folder on this machine. Refused before the appliance boots: an unknown host, a path outside
 * the roots, a PATH that is a file or a symlink there.
 */
export async function hostDestination(config: Config, hostKey: string, asked: string): Promise<RestoreDestination> {
  const host = config.hosts[hostKey];
  if (!host)
    throw new UsageError(
      `--host ${JSON.stringify(hostKey)}: no such host in the config's hosts (${Object.keys(config.hosts).join(', ')})`,
    );
  const to = remoteTarget(asked);
  if (to === undefined) throw new UsageError(`--to must be an absolute path on ${hostKey}: ${JSON.stringify(asked)}`);
  const root = restoreRootOf(to, restoreRoots(config, hostKey));
  if (!root.ok)
    throw new UsageError(`refusing to restore to ${to} on ${hostKey}: ${root.why} (hosts.${hostKey}.restoreRoots)`);
  if (!config.store) throw new UsageError('the config has no store section (store.root): no store to restore from');
  const stagingParent = join(config.store.root, DUMP_FOLDER);
  await mkdir(stagingParent, { recursive: true, mode: 0o700 });
  const ssh = await SshSession.connect(hostKey, host);
  try {
    if ((await remoteConflicts(ssh, single('dir'), to)).length)
      throw new UsageError(`--to ${to} on ${hostKey} is there and is not a folder (or is a symlink)`);
  } catch (err) {
    ssh.close();
    throw err;
  }
  const destOf = (name: string) => (name ? posix.join(to, name) : to);
  return {
    shown: `${hostKey}:${to}`,
    stagingParent,
    destOf,
    existing: async (names) => {
      const there: string[] = [];
      for (const name of names.filter(Boolean))
        there.push(...(await remoteConflicts(ssh, single('file'), destOf(name))).map((n) => `${hostKey}:${n}`));
      return there;
    },
    conflicts: async (entries, dest) => (await remoteConflicts(ssh, entries, dest)).map((n) => `${hostKey}:${n}`),
    prepare: () => makeFolders(ssh, to, root.root, 'umask 077'),
    put: (entries, top, dest, overwrite) =>
      uploadStagedTree({
        ssh,
        entries,
        stagedTop: top,
        dest,
        root: root.root,
        overwrite,
        maxBytesPerSecond: config.transfer.maxBytesPerSecond,
      }),
    close: () => ssh.close(),
  };
}
