import { GuestfishError, type GuestfishSession } from './guestfish';

/** How a set's disks look to libguestfs, and what was mounted (read-only) to read guest paths. */
export interface GuestLayout {
  /** The set's disk targets and the appliance's devices for them, in the order added. */
  disks: { disk: string; device: string }[];
  partitions: string[];
  filesystems: { device: string; type: string }[];
  /** Operating systems found by inspection (their root filesystems). */
  osRoots: string[];
  mounted: { device: string; mountpoint: string }[];
}

/** Filesystem types that hold no files (list-filesystems reports them too). */
const NOT_MOUNTABLE = new Set(['swap', 'unknown', '']);

/** The appliance's device for the n-th disk added: /dev/sda, /dev/sdb, ... */
export function applianceDevice(index: number): string {
  let name = '';
  for (let n = index; n >= 0; n = Math.floor(n / 26) - 1) name = String.fromCharCode(97 + (n % 26)) + name;
  return `/dev/sd${name}`;
}

/**
 * Mounts the guest read-only so guest paths mean what they mean inside it: with `filesystem` (a device as
 * `restore ls` lists it) that one on /; else an operating system found by inspection, with its own mount
 * points (/, /boot, /home, ...); else the disks' only filesystem on /. Several and no OS: refused, naming
 * them (the operator picks one with --fs).
 */
export async function mountGuest(
  session: GuestfishSession,
  diskTargets: readonly string[],
  filesystem?: string,
): Promise<GuestLayout> {
  const layout: GuestLayout = {
    disks: diskTargets.map((disk, i) => ({ disk, device: applianceDevice(i) })),
    partitions: await session.listPartitions(),
    filesystems: await session.listFilesystems(),
    osRoots: await session.inspectOs(),
    mounted: [],
  };
  const mountable = layout.filesystems.filter((f) => !NOT_MOUNTABLE.has(f.type));
  if (filesystem !== undefined) {
    if (!mountable.some((f) => f.device === filesystem))
      throw new GuestfishError(
        `no filesystem ${JSON.stringify(filesystem)} on the set's disks (have: ${describe(mountable)})`,
        'refused',
        'NoSuchFilesystem',
      );
    layout.mounted.push({ device: filesystem, mountpoint: '/' });
  } else if (layout.osRoots.length === 1) {
    layout.mounted.push(...(await session.inspectMountpoints(layout.osRoots[0]!)));
  } else if (mountable.length === 1) {
    layout.mounted.push({ device: mountable[0]!.device, mountpoint: '/' });
  } else {
    throw new GuestfishError(
      mountable.length === 0
        ? 'no filesystem on the set`s disks that holds files'
        : `${mountable.length} filesystems and ${layout.osRoots.length} operating systems on the set's disks: ` +
            `name one with --fs (${describe(mountable)})`,
      'refused',
      'WhichFilesystem',
    );
  }
  for (const m of layout.mounted) await session.mountReadOnly(m.device, m.mountpoint);
  return layout;
}

function describe(filesystems: readonly { device: string; type: string }[]): string {
  return (
    [...filesystems]
      .sort((a, b) => a.device.localeCompare(b.device))
      .map((f) => `${f.device} ${f.type}`)
      .join(', ') || 'none'
  );
}
