import { execFileSync } from 'node:child_process';
import { chmod, chown, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { PermissionsConfig } from '../../config/schema';

/** How the backup store's files and folders are created: who may read them. */
export interface StoreFileMode {
  fileMode: number;
  folderMode: number;
  /** Group id given to every file and folder created; undefined: the worker's own group. */
  gid?: number;
}

/** Backups hold whatever the sources hold: nobody but the worker's user reads them unless configured. */
export const OWNER_ONLY: StoreFileMode = { fileMode: 0o600, folderMode: 0o700 };

const groupIds = new Map<string, number>();

/** The group's id: a number as it is, a name looked up once (getent: /etc/group, LDAP, whatever NSS uses). */
function groupId(group: string): number {
  if (/^\d+$/.test(group)) return Number(group);
  let gid = groupIds.get(group);
  if (gid === undefined) {
    let entry: string;
    try {
      entry = execFileSync('getent', ['group', group], { encoding: 'utf8' });
    } catch {
      throw new Error(`permissions.group: no group named ${JSON.stringify(group)} on this machine`);
    }
    gid = Number(entry.split(':')[2]);
    groupIds.set(group, gid);
  }
  return gid;
}

export function storeFileMode(permissions: PermissionsConfig | undefined): StoreFileMode {
  if (!permissions) return OWNER_ONLY;
  return {
    fileMode: parseInt(permissions.fileMode, 8),
    folderMode: parseInt(permissions.folderMode, 8),
    ...(permissions.group !== undefined ? { gid: groupId(permissions.group) } : {}),
  };
}

/**
 * Gives a file (by path or open handle) the configured mode and group. The mode is set explicitly, not left
 * to creation, because the process umask would otherwise take away group bits a site asked for.
 */
export async function applyFileMode(
  target: string | { chmod(mode: number): Promise<void>; chown(uid: number, gid: number): Promise<void> },
  mode: StoreFileMode,
  kind: 'file' | 'folder' = 'file',
): Promise<void> {
  const bits = kind === 'file' ? mode.fileMode : mode.folderMode;
  if (typeof target === 'string') {
    await chmod(target, bits);
    if (mode.gid !== undefined) await chown(target, -1, mode.gid);
  } else {
    await target.chmod(bits);
    if (mode.gid !== undefined) await target.chown(-1, mode.gid);
  }
}

/** mkdir -p, giving every folder it creates (and only those) the configured mode and group. */
export async function makeFolders(path: string, mode: StoreFileMode): Promise<void> {
  const first = await mkdir(path, { recursive: true, mode: mode.folderMode });
  if (first === undefined) return;
  const created: string[] = [];
  for (let dir = path; ; dir = dirname(dir)) {
    created.push(dir);
    if (dir === first || dir === dirname(dir)) break;
  }
  for (const dir of created) await applyFileMode(dir, mode, 'folder');
}
