import type { Element } from '@xmldom/xmldom';
import { children, newDocument, parse, serialize } from './domain-xml';
import { RemoteCommandError } from '../ssh/remote-command-error';
import { PASSABLE_UMASK } from '../ssh/remote-modes';
import { quote } from '../ssh/shell-quote';
import type { SshSession } from '../ssh/ssh-session';
import type { BlockJob, VmDisk } from './driver';
import { parseBlockJob, type LibvirtDriver } from './libvirt-driver';
import { QemuImg } from './qemu-img';

/**
 * Low-downtime imaging: while a VM is off, each disk gets an external qcow2 overlay next to it, named
 * `<disk file>.cluster-backup-overlay-<stamp>.qcow2`; the VM runs on the overlays while the frozen originals
 * are imaged, then the overlays are merged back live (active block commit + pivot) and deleted.
 *
 * Next to the disk (not in the image area): QEMU may already write in that folder (permissions, SELinux or
 * AppArmor labels), the overlay grows with the guest's writes on the filesystem the guest writes to anyway,
 * and pruning the image area can never remove a running VM's data. The name alone tells whose file it is.
 *
 * A block device has no folder of its own to hold a file: its overlay goes in `BLOCK_OVERLAY_DIR` of the
 * image area (beside the product's records, never pruned), named after the device path, URI-encoded
 * (`%2Fdev%2Fvg0%2Fdb.cluster-backup-overlay-<stamp>.qcow2`), and is committed back into the device.
 */
export const OVERLAY_MARK = '.cluster-backup-overlay-';
const OVERLAY_NAME = /^(.+)\.cluster-backup-overlay-(\d{8}T\d{6}Z)\.qcow2$/s;
const STAMP = /^\d{8}T\d{6}Z$/;
/** Under the image area: the overlays of block-device disks. */
export const BLOCK_OVERLAY_DIR = '.cluster-backup/overlays';

export interface OverlayDisk {
  /** Device name inside the VM (vda). */
  target: string;
  /** The overlay the VM writes to. */
  overlay: string;
  /** The original disk file (or block device), frozen under the overlay. */
  base: string;
  baseFormat: string;
  /** file: the original is a file; block: a block device (its disk is `type='block'` again once merged). */
  baseType: 'file' | 'block';
  stamp: string;
}

export interface MergeProgress {
  target: string;
  /** Bytes of the overlay committed into the original so far, of `end`. */
  cur: number;
  end: number;
}

export interface MergeOptions {
  /** The whole merge of one disk, started to pivoted; past it the job is aborted and the VM stays on its overlay. */
  timeoutSeconds: number;
  /** Limits the commit's I/O (MiB/s); unset: as fast as the storage goes. */
  bandwidthMiBps?: number;
  onProgress?: (progress: MergeProgress) => void;
  signal?: AbortSignal;
  pollMs?: number;
}

/**
 * The overlay of `disk` for the run `stamp`: next to a disk file; in the image area's `BLOCK_OVERLAY_DIR` for
 * a block device.
 */
export function overlayPathFor(disk: { source: string; type: string }, stamp: string, imageArea: string): string {
  if (!STAMP.test(stamp)) throw new Error(`bad stamp ${JSON.stringify(stamp)}`);
  if (disk.type === 'block') {
    return `${blockOverlayDir(imageArea)}/${encodeURIComponent(disk.source)}${OVERLAY_MARK}${stamp}.qcow2`;
  }
  return `${disk.source}${OVERLAY_MARK}${stamp}.qcow2`;
}

export function blockOverlayDir(imageArea: string): string {
  return `${imageArea.replace(/\/+$/, '')}/${BLOCK_OVERLAY_DIR}`;
}

/**
 * Creates the block overlays' folder, 0711 with the `.cluster-backup` folder above it (the records' folder,
 * made 0700 by VmRecords): QEMU, running as another user, must pass through both to its overlay, which
 * libvirt creates 0600 and hands to it.
 */
export async function makeBlockOverlayDir(ssh: SshSession, imageArea: string): Promise<void> {
  const dir = blockOverlayDir(imageArea);
  const folders = [folderOf(dir), dir].map(quote).join(' ');
  await ssh.run({ shell: `${PASSABLE_UMASK} && mkdir -p -- ${quote(dir)} && chmod 0711 -- ${folders}` });
}

/** The original disk, its kind and the run stamp of one of our overlay files, or undefined for any other file. */
export function parseOverlayPath(
  path: string,
): { base: string; stamp: string; baseType: 'file' | 'block' } | undefined {
  const match = OVERLAY_NAME.exec(path);
  if (!match) return undefined;
  const [, named = '', stamp = ''] = match;
  const folder = folderOf(named);
  const encoded = named.slice(folder.length + 1);
  if (folder.endsWith(`/${BLOCK_OVERLAY_DIR}`) && encoded.startsWith('%2F')) {
    try {
      return { base: decodeURIComponent(encoded), stamp, baseType: 'block' };
    } catch {
      return undefined; // not an encoding of ours
    }
  }
  return { base: named, stamp, baseType: 'file' };
}

function child(parent: Element | undefined, name: string): Element | undefined {
  return parent ? children(parent, name)[0] : undefined;
}

function parseDomainXml(xml: string): Element {
  return parse(xml).domain;
}

function domainDisks(domain: Element): Element[] {
  const devices = child(domain, 'devices');
  return devices ? children(devices, 'disk') : [];
}

/**
 * The disks of a domain that run on one of our overlays. A live domain's XML names the backing file; an
 * inactive one's does not (it lives in the overlay's header), so the base is then taken from the name and
 * checked against the header before anything is merged (see Overlays.baseOf).
 */
export function overlayDisksFromXml(xml: string): (OverlayDisk & { baseKnown: boolean })[] {
  const found: (OverlayDisk & { baseKnown: boolean })[] = [];
  for (const disk of domainDisks(parseDomainXml(xml))) {
    if (disk.getAttribute('type') !== 'file') continue;
    const file = child(disk, 'source')?.getAttribute('file');
    const target = child(disk, 'target')?.getAttribute('dev');
    const named = file ? parseOverlayPath(file) : undefined;
    if (!file || !target || !named) continue;
    const backing = child(disk, 'backingStore');
    const backingSource = child(backing, 'source');
    const backingFile = backingSource?.getAttribute('file') || backingSource?.getAttribute('dev') || undefined;
    const backingFormat = child(backing, 'format');
    found.push({
      target,
      overlay: file,
      base: backingFile ?? named.base,
      baseFormat: backingFormat?.getAttribute('type') ?? '',
      baseType: named.baseType,
      stamp: named.stamp,
      baseKnown: backingFile !== undefined,
    });
  }
  return found;
}

/** The domain's XML with each overlay disk pointing at its original file again (for an inactive domain). */
export function xmlWithOriginals(xml: string, disks: OverlayDisk[]): string {
  const domain = parseDomainXml(xml);
  for (const disk of domainDisks(domain)) {
    const target = child(disk, 'target')?.getAttribute('dev');
    const ours = disks.find((d) => d.target === target);
    const source = child(disk, 'source');
    if (!ours || !source || source.getAttribute('file') !== ours.overlay) continue;
    if (ours.baseType === 'block') {
      disk.setAttribute('type', 'block');
      source.removeAttribute('file');
      source.setAttribute('dev', ours.base);
    } else {
      source.setAttribute('file', ours.base);
    }
    child(disk, 'driver')?.setAttribute('type', ours.baseFormat);
    for (const backing of children(disk, 'backingStore')) disk.removeChild(backing);
  }
  return serialize(domain);
}

/** libvirt's request for a disk-only snapshot: our disks get an overlay, every other disk none. */
export function snapshotXml(domainXml: string, overlays: { target: string; overlay: string }[]): string {
  const doc = newDocument('domainsnapshot');
  const disksElement = doc.createElement('disks');
  doc.documentElement!.appendChild(disksElement);
  for (const disk of domainDisks(parseDomainXml(domainXml))) {
    const target = child(disk, 'target')?.getAttribute('dev');
    if (!target) continue;
    const entry = doc.createElement('disk');
    entry.setAttribute('name', target);
    const ours = overlays.find((o) => o.target === target);
    entry.setAttribute('snapshot', ours ? 'external' : 'no');
    if (ours) {
      entry.setAttribute('type', 'file'); // the overlay is a file, whatever the original (a block device too)
      const driver = doc.createElement('driver');
      driver.setAttribute('type', 'qcow2');
      const source = doc.createElement('source');
      source.setAttribute('file', ours.overlay);
      entry.appendChild(driver);
      entry.appendChild(source);
    }
    disksElement.appendChild(entry);
  }
  return serialize(doc);
}

export { parseBlockJob };

/** The folder a file is in. */
export function folderOf(path: string): string {
  return path.slice(0, path.lastIndexOf('/')) || '/';
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Overlays on a hypervisor: the domain's side through the libvirt driver, the files' side (rm,
 * stat, df) over SSH, each word quoted, images through QemuImg.
 */
export class Overlays {
  constructor(
    private readonly ssh: SshSession,
    private readonly driver: LibvirtDriver,
    private readonly qemuImg = new QemuImg(ssh),
  ) {}

  private refuse(message: string): RemoteCommandError {
    return new RemoteCommandError(`${this.ssh.label}: ${message}`, {
      kind: 'unsafe-remote-data',
      host: this.ssh.label,
    });
  }

  async domainXml(vm: string, inactive: boolean): Promise<string> {
    return this.driver.domainXml(vm, inactive);
  }

  private async isActive(vm: string): Promise<boolean> {
    const { state } = await this.driver.state(vm);
    if (state === 'missing') {
      throw new RemoteCommandError(`${this.ssh.label}: no domain ${JSON.stringify(vm)}`, {
        kind: 'not-found',
        host: this.ssh.label,
      });
    }
    return state !== 'shut-off';
  }

  /**
   * The disks of `vm` that run on our overlays, from the live XML if the domain runs, else from the inactive
   * one. Each base is checked against what the overlay's own header says: a file that merely looks like ours
   * is never merged or deleted.
   */
  async onOverlays(vm: string): Promise<{ active: boolean; disks: OverlayDisk[] }> {
    const active = await this.isActive(vm);
    const disks: OverlayDisk[] = [];
    for (const found of overlayDisksFromXml(await this.domainXml(vm, !active))) {
      const header = await this.baseOf(found.overlay);
      if (header.base !== found.base) {
        throw this.refuse(`${found.overlay} is backed by ${header.base}, not ${found.base}: not touching it`);
      }
      disks.push({
        target: found.target,
        overlay: found.overlay,
        base: found.base,
        baseFormat: header.format || found.baseFormat,
        baseType: found.baseType,
        stamp: found.stamp,
      });
    }
    return { active, disks };
  }

  /** The backing file an overlay's qcow2 header names (-U: the running VM holds the lock). */
  async baseOf(overlay: string): Promise<{ base: string; format: string }> {
    const info = await this.qemuImg.info(overlay, 'qcow2');
    const base = info['full-backing-filename'] ?? info['backing-filename'];
    if (!base) throw this.refuse(`${overlay} has no backing file`);
    return { base, format: info['backing-filename-format'] ?? '' };
  }

  /**
   * Puts a new overlay on each of `disks` of a shut-off domain (a disk-only snapshot of the inactive domain,
   * without snapshot metadata: libvirt creates the files and points the definition at them). Idempotent: a
   * retry finds the overlays of the same stamp already in place.
   */
  async create(vm: string, disks: VmDisk[], stamp: string, imageArea: string): Promise<OverlayDisk[]> {
    if (await this.isActive(vm)) throw this.refuse(`${vm} is not shut off: overlays go on only while it is off`);
    const xml = await this.domainXml(vm, true);
    const existing = overlayDisksFromXml(xml);
    const older = existing.find((d) => d.stamp !== stamp);
    if (older) throw this.refuse(`${vm} disk ${older.target} is still on overlay ${older.overlay}: merge it first`);
    const wanted = disks.map((d) => ({ ...d, overlay: overlayPathFor(d, stamp, imageArea) }));
    const missing = wanted.filter((d) => !existing.some((e) => e.target === d.target));
    if (missing.length > 0) {
      if (missing.some((d) => d.type === 'block'))
        await makeBlockOverlayDir(this.ssh, imageArea);
      // A file of that name that the domain does not use is what a crashed attempt left: never data.
      await this.ssh.run(['rm', '-f', '--', ...missing.map((d) => d.overlay)]);
      await this.driver.snapshotDiskOnly(vm, snapshotXml(xml, missing));
    }
    return wanted.map((d) => ({
      target: d.target,
      overlay: d.overlay,
      base: d.source,
      baseFormat: d.format,
      baseType: d.type === 'block' ? 'block' : 'file',
      stamp,
    }));
  }

  async blockJob(vm: string, target: string): Promise<BlockJob | undefined> {
    return this.driver.blockJob(vm, target);
  }

  /**
   * Merges one overlay of a running domain back into its original (active commit of the top layer only,
   * `--shallow`: an original that has a backing file of its own keeps it), waits until the job is ready,
   * pivots and checks that the domain writes to the original again. Picks up a job a killed worker or a
   * restarted libvirtd left behind. The overlay file is then deleted. On timeout the job is aborted: the
   * VM keeps running on its overlay, whole, for the next attempt.
   */
  async mergeLive(vm: string, disk: OverlayDisk, options: MergeOptions): Promise<void> {
    const deadline = Date.now() + options.timeoutSeconds * 1000;
    let job = await this.blockJob(vm, disk.target);
    if (job && job.type !== 'Active Block Commit') {
      throw this.refuse(`${vm} disk ${disk.target} has a ${job.type} job running: not merging over it`);
    }
    if (!job) {
      await this.driver.blockCommitActive(vm, disk.target, options.bandwidthMiBps);
    }
    // libvirt reports cur == end only once the job is ready to pivot.
    for (;;) {
      job = await this.blockJob(vm, disk.target);
      if (!job) break; // pivoted already (a previous attempt got that far)
      options.onProgress?.({ target: disk.target, cur: job.cur, end: job.end });
      if (job.end > 0 && job.cur === job.end) {
        await this.driver.blockJobPivot(vm, disk.target);
        break;
      }
      if (options.signal?.aborted || Date.now() >= deadline) {
        await this.driver.blockJobAbort(vm, disk.target);
        throw new RemoteCommandError(
          `${this.ssh.label}: merging ${disk.overlay} into ${disk.base} ${options.signal?.aborted ? 'was cancelled' : `did not finish within ${options.timeoutSeconds} s`}; the job was aborted and ${vm} runs on its overlay`,
          { kind: 'command', host: this.ssh.label, command: 'virsh blockcommit', exitCode: null, signal: null },
        );
      }
      await sleep(options.pollMs ?? 250);
    }
    const still = overlayDisksFromXml(await this.domainXml(vm, false)).find((d) => d.target === disk.target);
    if (still) {
      // The job ended without a pivot (aborted, or failed while libvirtd was away): the next attempt starts one.
      throw new RemoteCommandError(`${this.ssh.label}: ${vm} disk ${disk.target} still runs on ${still.overlay}`, {
        kind: 'command',
        host: this.ssh.label,
        command: 'virsh blockjob --pivot',
        exitCode: null,
        signal: null,
      });
    }
    await this.removeOverlayFile(disk.overlay);
  }

  /**
   * Merges the overlays of a shut-off domain (a VM shut down while on its overlays): committed (QemuImg) into
   * the original, then the definition points at the originals again, then the overlay files go. Each step
   * may be repeated after a crash: committing an overlay twice writes the same data twice.
   */
  async mergeOffline(vm: string, disks: OverlayDisk[]): Promise<void> {
    if (await this.isActive(vm)) throw this.refuse(`${vm} is running: its overlays are merged live`);
    for (const disk of disks) await this.qemuImg.commit(disk.overlay);
    const xml = await this.domainXml(vm, true);
    await this.driver.define(xmlWithOriginals(xml, disks));
    const left = overlayDisksFromXml(await this.domainXml(vm, true));
    if (left.length > 0) throw this.refuse(`${vm} is still defined on ${left.map((d) => d.overlay).join(', ')}`);
    for (const disk of disks) await this.removeOverlayFile(disk.overlay);
  }

  /** Deletes one of our overlay files (nothing else: the name is checked first). */
  async removeOverlayFile(path: string): Promise<void> {
    if (!parseOverlayPath(path)) throw this.refuse(`${path} is not an overlay of ours: not deleting it`);
    await this.ssh.run(['rm', '-f', '--', path]);
  }

  /**
   * Overlay files of `disks` (next to a disk file, in the image area for a block device) that the domain no
   * longer uses (a crash between the pivot or the define and the delete): the domain must not be on them,
   * which the caller checks first.
   */
  async strayOverlays(
    disks: { source: string; type: string }[],
    inUse: string[],
    imageArea: string,
  ): Promise<string[]> {
    const stray: string[] = [];
    for (const disk of disks) {
      const folder = disk.type === 'block' ? blockOverlayDir(imageArea) : folderOf(disk.source);
      const out = await this.ssh.run({
        shell: `[ -d ${quote(folder)} ] || exit 0; find ${quote(folder)} -maxdepth 1 -type f -name ${quote(`*${OVERLAY_MARK}*.qcow2`)} -print0`,
      });
      for (const path of out.toString('utf8').split('\0').filter(Boolean)) {
        if (parseOverlayPath(path)?.base === disk.source && !inUse.includes(path)) stray.push(path);
      }
    }
    return stray;
  }

  /** Free bytes on the filesystem that holds the folder `dir`, and that filesystem's device number. */
  async freeSpace(dir: string): Promise<{ freeBytes: number; device: string }> {
    const out = await this.ssh.run({ shell: `stat -c %d ${quote(dir)} && df -P -B1 ${quote(dir)}` });
    const lines = out.toString('utf8').trim().split('\n');
    const freeBytes = Number(lines.at(-1)?.split(/\s+/)[3]);
    if (!Number.isSafeInteger(freeBytes)) throw this.refuse(`cannot read free space of ${dir}`);
    return { freeBytes, device: lines[0] ?? '' };
  }

  /**
   * A file's identity as far as its contents go (modification and change times to the nanosecond, size):
   * an original under an overlay must show the same before and after it is imaged.
   */
  async fileVersion(path: string): Promise<string> {
    return (await this.ssh.run(['stat', '-L', '-c', '%y %z %s', '--', path])).toString('utf8').trim();
  }

  /** Bytes the overlay occupies on disk now (what the guest wrote since it started on it). */
  async allocatedBytes(path: string): Promise<number> {
    const out = await this.ssh.run(['stat', '-c', '%b %B', '--', path]);
    const [blocks = 0, size = 0] = out.toString('utf8').trim().split(' ').map(Number);
    return blocks * size;
  }
}
