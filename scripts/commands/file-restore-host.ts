import { mkdir } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { DUMP_FOLDER } from '../../adapters/image-sets/set-images';
import { showName } from '../../adapters/local/staged-tree';
import { SshSession } from '../../adapters/ssh/ssh-session';
import { makeFolders } from '../../adapters/transfer/stream-upload';
import { remoteConflicts, remoteKinds, uploadStagedTree } from '../../adapters/transfer/tree-upload';
import type { Config } from '../../config/schema';
import { remoteTarget, restoreRootOf, restoreRoots } from '../../config/restore-roots';
import { UsageError } from './command-kit';
import type { RestoreDestination } from './file-restore-destination';

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
    const [kind] = await remoteKinds(ssh, [to]);
    if (kind !== 'absent' && kind !== 'dir')
      throw new UsageError(
        `--to ${to} on ${hostKey} is there and is not a folder (${kind === 'symlink' ? 'a symlink' : 'a file'})`,
      );
  } catch (err) {
    ssh.close();
    throw err;
  }
  const destOf = (name: string) => (name ? posix.join(to, name) : to);
  return {
    shown: `${hostKey}:${to}`,
    stagingParent,
    destOf,
    // As on this machine: a file or symlink under a top-level name is there already; a folder merges.
    existing: async (names) => {
      const paths = names.filter(Boolean).map(destOf);
      const kinds = await remoteKinds(ssh, paths);
      return paths
        .filter((_, i) => kinds[i] === 'other' || kinds[i] === 'symlink')
        .map((p) => `${hostKey}:${showName(p)}`);
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
