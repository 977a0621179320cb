import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rm, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { resticOptions } from '../../activities/services';
import {
  GuestfishError,
  GuestfishSession,
  S_IFDIR,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  type GuestStat,
} from '../../adapters/guestfs/guestfish';
import { mountGuest, type GuestLayout } from '../../adapters/guestfs/guest-view';
import {
  filesSetImages,
  resticSetImages,
  StoredSetProblem,
  type SetImages,
} from '../../adapters/image-sets/set-images';
import { LocalImageSets } from '../../adapters/image-sets/local-image-sets';
import { ResticImageSets } from '../../adapters/image-sets/restic-image-sets';
import { Restic } from '../../adapters/restic/restic';
import { checkStaged, showName, type StagedCheck } from '../../adapters/local/staged-tree';
import { localDestination, type RestoreDestination } from './file-restore-destination';
import { hostDestination } from './file-restore-host';
import { extractTar } from '../../adapters/local/tar-extract';
import type { Config } from '../../config/schema';
import { unsafeVmNameReason } from '../../domain/vm-names';
import { UsageError } from './command-kit';

/** Which set, disk and filesystem a file restore reads (all optional: newest verified set, every disk). */
export interface GuestSelection {
  vm: string;
  set?: string;
  disk?: string;
  fs?: string;
}

/** A refusal that writes nothing: the output says why; exit 1 (not OK). */
export class FileRestoreRefused extends Error {
  override name = 'FileRestoreRefused';
  constructor(
    message: string,
    readonly problems: string[] = [],
  ) {
    super(message);
  }
}

/** The set's disk images on this machine: from the store (files) or dumped from restic (checked, temporary). */
export async function openSetImages(config: Config, selection: GuestSelection): Promise<SetImages> {
  const reason = unsafeVmNameReason(selection.vm);
  if (reason) throw new UsageError(`refused VM name ${JSON.stringify(selection.vm)}: ${reason}`);
  if (!config.store) throw new UsageError('the config has no store section (store.root): no store to restore from');
  try {
    if (config.store.engine === 'restic')
      return await resticSetImages(
        new ResticImageSets(new Restic(resticOptions(config))),
        config.store.root,
        selection.vm,
        selection.set,
        selection.disk,
      );
    return await filesSetImages(new LocalImageSets(config.store.root), selection.vm, selection.set, selection.disk);
  } catch (err) {
    // A set or disk that is not there is a bad argument (exit 2); a damaged one is an error (exit 4).
    if (err instanceof StoredSetProblem && err.kind === 'missing') throw new UsageError(err.message);
    throw err;
  }
}

/** Opens the set, boots one read-only appliance, mounts the guest; `use` runs; everything is closed after. */
export async function withGuest<T>(
  config: Config,
  selection: GuestSelection,
  use: (session: GuestfishSession, layout: GuestLayout, images: SetImages) => Promise<T>,
): Promise<T> {
  const images = await openSetImages(config, selection);
  try {
    const session = await GuestfishSession.open(images.disks);
    try {
      const layout = await mountGuest(
        session,
        images.disks.map((d) => d.disk),
        selection.fs,
      ).catch((err: unknown) => {
        // --fs naming nothing, or several filesystems and no --fs: the command line must say more (exit 2).
        if (err instanceof GuestfishError && (err.type === 'NoSuchFilesystem' || err.type === 'WhichFilesystem'))
          throw new UsageError(err.message);
        throw err;
      });
      return await use(session, layout, images);
    } finally {
      await session.close();
    }
  } finally {
    await images.release();
  }
}

export interface RestoredPath {
  path: string;
  kind: 'file' | 'folder';
  /** Files and folders written into the destination (names as written, escaped for display). */
  written: string[];
  bytes: number;
}

export interface FileRestoreResult {
  vm: string;
  stamp: string;
  to: string;
  ok: boolean;
  restored: RestoredPath[];
  overwritten: string[];
  /** Entries not restored, and why (devices, symlinks that point out of the restored tree). */
  refused: { name: string; why: string }[];
  bitsDropped: string[];
  mounted: GuestLayout['mounted'];
}

export interface FileRestoreRequest extends GuestSelection {
  paths: string[];
  to: string;
  overwrite: boolean;
  /** A host of the config (`--host`): `to` is a path there, at or below one of its restore roots. */
  host?: string;
}

/** Guest paths from the command line: absolute, normalized (`..` cannot climb above the guest's /). */
export function guestPaths(paths: readonly string[]): string[] {
  if (paths.length === 0) throw new UsageError('name at least one path in the guest (e.g. /etc/hosts)');
  return paths.map((p) => {
    if (!p.startsWith('/')) throw new UsageError(`guest path ${JSON.stringify(p)} is not absolute (start it with /)`);
    if (p.includes('\0')) throw new UsageError(`guest path ${JSON.stringify(p)} holds a NUL byte`);
    return posix.normalize(p);
  });
}

const kindOf = (st: GuestStat) => st.mode & S_IFMT;

/**
 * `restore file`: each guest path copied (a file with its mode and times, a folder as its whole tree) into a
 * private staging folder, every staged entry checked, and only then put into DIR (on this machine, or on a
 * host over SSH). A path that is not in the guest, or a destination file that exists (without --overwrite),
 * refuses the whole request before anything is written into DIR.
 */
export async function restoreFiles(config: Config, request: FileRestoreRequest): Promise<FileRestoreResult> {
  const paths = guestPaths(request.paths);
  const destination =
    request.host !== undefined
      ? await hostDestination(config, request.host, request.to)
      : await localDestination(request.to);
  try {
    return await restoreInto(config, request, paths, destination);
  } finally {
    destination.close();
  }
}

async function restoreInto(
  config: Config,
  request: FileRestoreRequest,
  paths: string[],
  destination: RestoreDestination,
): Promise<FileRestoreResult> {
  if (!request.overwrite) {
    const there = await destination.existing(paths.map((p) => posix.basename(p)));
    if (there.length) throw new FileRestoreRefused('exists in the destination (give --overwrite to replace)', there);
  }
  return withGuest(config, request, async (session, layout, images) => {
    const stats: GuestStat[] = [];
    const missing: string[] = [];
    for (const p of paths) {
      const st = await session.lstat(p);
      if (!st) missing.push(`${showName(p)}: not in ${images.vm}/${images.stamp} (mounted: ${mountedText(layout)})`);
      else if (![S_IFREG, S_IFDIR].includes(kindOf(st)))
        missing.push(
          `${showName(p)}: ${kindOf(st) === S_IFLNK ? 'a symlink (name its target instead)' : 'not a file or folder'}`,
        );
      else stats.push(st);
    }
    if (missing.length) throw new FileRestoreRefused('nothing restored', missing);
    // The staging folder: private (mkdtemp: 0700).
    const staging = await mkdtemp(join(destination.stagingParent, '.cluster-backup-restore-'));
    try {
      const staged: { path: string; top: string; check: StagedCheck; kind: 'file' | 'folder'; name: string }[] = [];
      for (const [i, p] of paths.entries()) {
        const st = stats[i]!;
        const holder = join(staging, String(i));
        await mkdir(holder, { mode: 0o700 });
        const name = posix.basename(p);
        const top = name ? join(holder, name) : join(holder, 'root');
        if (kindOf(st) === S_IFREG) {
          await session.download(p, top);
          await chmod(top, st.mode & 0o777 & ~0o6000);
        } else {
          const tar = join(staging, `${i}.tar`);
          await mkdir(top, { mode: 0o700 });
          await session.tarOut(p, tar);
          await extractTar(tar, top);
          await rm(tar, { force: true });
          await chmod(top, st.mode & 0o777);
        }
        await utimes(top, st.atimeSec + st.atimeNsec / 1e9, st.mtimeSec + st.mtimeNsec / 1e9);
        staged.push({
          path: p,
          top,
          check: await checkStaged(top),
          kind: kindOf(st) === S_IFREG ? 'file' : 'folder',
          name,
        });
      }
      if (!request.overwrite) {
        const there = (
          await Promise.all(staged.map((s) => destination.conflicts(s.check.entries, destination.destOf(s.name))))
        ).flat();
        if (there.length)
          throw new FileRestoreRefused('exists in the destination (give --overwrite to replace)', there);
      }
      await destination.prepare();
      const result: FileRestoreResult = {
        vm: images.vm,
        stamp: images.stamp,
        to: destination.shown,
        ok: true,
        restored: [],
        overwritten: [],
        refused: [],
        bitsDropped: [],
        mounted: layout.mounted,
      };
      for (const s of staged) {
        const moved = await destination.put(s.check.entries, s.top, destination.destOf(s.name), request.overwrite);
        result.restored.push({
          path: s.path,
          kind: s.kind,
          written: moved.written,
          bytes: s.check.entries.reduce((n, e) => n + e.bytes, 0),
        });
        result.overwritten.push(...moved.overwritten);
        result.refused.push(
          ...[...s.check.refused, ...(moved.refused ?? [])].map((r) => ({ ...r, name: `${s.path}: ${r.name}` })),
        );
        result.bitsDropped.push(...s.check.bitsDropped);
      }
      result.ok = result.refused.length === 0;
      return result;
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
  });
}

function mountedText(layout: GuestLayout): string {
  return layout.mounted.map((m) => `${m.device} on ${m.mountpoint}`).join(', ');
}

export interface GuestListing {
  vm: string;
  stamp: string;
  layout: GuestLayout;
  path: string;
  entries: { name: string; type: string; mode: string; bytes: number; mtime: string }[];
}

const TYPES: Record<number, string> = {
  [S_IFREG]: 'file',
  [S_IFDIR]: 'folder',
  [S_IFLNK]: 'symlink',
  0o020000: 'char-device',
  0o060000: 'block-device',
  0o010000: 'fifo',
  0o140000: 'socket',
};

function entryOf(name: string, st: GuestStat) {
  return {
    name,
    type: TYPES[kindOf(st)] ?? 'other',
    mode: (st.mode & 0o7777).toString(8).padStart(4, '0'),
    bytes: st.size,
    mtime: new Date(st.mtimeSec * 1000).toISOString(),
  };
}

/** `restore ls`: the set's disks, partitions, filesystems and OS, and what one guest folder (default /) holds. */
export async function listGuest(config: Config, selection: GuestSelection, path = '/'): Promise<GuestListing> {
  const [guestPath] = guestPaths([path]);
  return withGuest(config, selection, async (session, layout, images) => {
    const listing: GuestListing = { vm: images.vm, stamp: images.stamp, layout, path: guestPath!, entries: [] };
    const st = await session.lstat(guestPath!);
    if (!st) throw new FileRestoreRefused(`${showName(guestPath!)}: not in ${images.vm}/${images.stamp}`);
    if (kindOf(st) !== S_IFDIR) {
      listing.entries.push(entryOf(showName(posix.basename(guestPath!)), st));
      return listing;
    }
    const scratch = await mkdtemp(join(tmpdir(), 'cluster-backup-ls-'));
    try {
      const namesFile = join(scratch, randomBytes(4).toString('hex'));
      await session.listNames(guestPath!, namesFile);
      const raw = await readFile(namesFile);
      const names = splitNul(raw);
      for (const bytes of names) {
        const text = bytes.toString('utf8');
        if (!Buffer.from(text).equals(bytes)) {
          // Not UTF-8: no argv can carry this name to guestfish; it is listed, and `restore file` of its folder copies it.
          listing.entries.push({ name: showName(bytes), type: '?', mode: '?', bytes: 0, mtime: '?' });
          continue;
        }
        const entry = await session.lstat(posix.join(guestPath!, text));
        if (entry) listing.entries.push(entryOf(showName(bytes), entry));
      }
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
    return listing;
  });
}

function splitNul(raw: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < raw.length;) {
    const end = raw.indexOf(0, at);
    const stop = end === -1 ? raw.length : end;
    if (stop > at) out.push(raw.subarray(at, stop));
    at = stop + 1;
  }
  return out;
}
