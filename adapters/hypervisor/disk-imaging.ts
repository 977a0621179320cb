import { SHA256_FUNCTION } from '../ssh/remote-hash';
import type { ImageFormat } from '../../domain/image-set';
import { PARTIAL_SUFFIX } from '../image-sets/image-sets';
import { RemoteCommandError } from '../ssh/remote-command-error';
import { PASSABLE_UMASK, PRIVATE_UMASK } from '../ssh/remote-modes';
import { endTracked, runTracked, trackedProgress, type RemoteProgress } from '../ssh/remote-process';
import { quote } from '../ssh/shell-quote';
import type { SshSession } from '../ssh/ssh-session';
import { QemuImg } from './qemu-img';
import type { DiskInfo, VmDisk } from '../../domain/vm-contracts';

export type { DiskInfo };

export interface VerifiedImage {
  path: string;
  format: ImageFormat;
  bytes: number;
  allocatedBytes: number;
  virtualSize: number;
  sha256: string;
}

/** How long a remote step may take and how long it may go without progress. */
export interface StepLimits {
  timeoutSeconds: number;
  stallSeconds: number;
  signal?: AbortSignal;
  onProgress?: (progress: RemoteProgress) => void;
}

export class StalledError extends Error {
  override name = 'StalledError';
}

const PROGRESS_POLL_MS = 2000;
const IMAGE_FORMATS = new Set<string>(['qcow2', 'raw']);

/** Why this disk cannot be imaged, or undefined when it can (files and block devices, qcow2 or raw). */
export function unsupportedDiskReason(disk: VmDisk): string | undefined {
  if (disk.type !== 'file' && disk.type !== 'block')
    return `disk ${disk.target} is of type ${disk.type} (file and block disks can be imaged)`;
  if (!disk.source) return `disk ${disk.target} has no source path`;
  if (!IMAGE_FORMATS.has(disk.format))
    return `disk ${disk.target} has format ${disk.format} (qcow2 and raw are supported)`;
  return undefined;
}

function refuse(ssh: SshSession, message: string): RemoteCommandError {
  return new RemoteCommandError(`${ssh.label}: ${message}`, { kind: 'unsafe-remote-data', host: ssh.label });
}

/** Images one VM's disks into files (QemuImg, or cp for a raw copy of a file), and verifies them, on the hypervisor. */
export class DiskImaging {
  constructor(
    private readonly ssh: SshSession,
    private readonly qemuImg = new QemuImg(ssh),
  ) {}

  async diskInfo(disk: VmDisk): Promise<DiskInfo> {
    const info = await this.qemuImg.info(disk.source, disk.format);
    const virtualSize = info['virtual-size'];
    if (typeof virtualSize !== 'number') throw refuse(this.ssh, `${disk.source}: its header gives no virtual size`);
    return {
      virtualSize,
      allocatedBytes: disk.type === 'block' ? virtualSize : (info['actual-size'] ?? virtualSize),
      imageFormat: disk.format as ImageFormat,
    };
  }

  /**
   * Copies a (stopped or frozen) disk to `final` through `<final>.partial`, flushes it and renames it.
   * Idempotent: a finished image is kept; a stale partial, or a copy an earlier attempt left running, is ended
   * and redone. Fails (StalledError) when the copy reads nothing for `stallSeconds`; the remote copy always
   * ends with this call.
   */
  async createImage(disk: VmDisk, format: ImageFormat, final: string, limits: StepLimits): Promise<string> {
    const partial = final + PARTIAL_SUFFIX;
    const pidFile = `${final}.pid`;
    const copy =
      disk.type === 'file' && format === 'raw'
        ? `cp --sparse=always -- ${quote(disk.source)} ${quote(partial)}`
        : QemuImg.convertLine({ path: disk.source, format: disk.format }, { path: partial, format });
    const dir = final.slice(0, final.lastIndexOf('/'));
    const done = await this.ssh.exec({
      shell: `[ -f ${quote(final)} ] && [ ! -e ${quote(partial)} ] && [ ! -e ${quote(pidFile)} ]`,
    });
    if (done.exitCode === 0) return final;
    // The set's folder is private; the VM's folder above it may also hold a boot test's disks (see PASSABLE_UMASK).
    await this.ssh.run({ shell: `${PASSABLE_UMASK} && mkdir -p -- ${quote(dir)} && chmod 0700 -- ${quote(dir)}` });
    await this.watched(
      pidFile,
      partial,
      {
        pidFile,
        timeoutSeconds: limits.timeoutSeconds,
        label: `imaging ${disk.source} to ${partial}`,
        // cp keeps the source disk's mode (less the umask): the image is made exactly 0600.
        script: `${PRIVATE_UMASK} && rm -f ${quote(partial)} && ${copy} && chmod 0600 -- ${quote(partial)} && sync ${quote(partial)} && mv -f ${quote(partial)} ${quote(final)}`,
      },
      limits,
    ).catch(async (err: unknown) => {
      await this.ssh.run(['rm', '-f', '--', partial]).catch(() => undefined);
      throw err;
    });
    return final;
  }

  /** Exists, right virtual size, consistent (QemuImg.checkLine, qcow2), SHA-256 and sizes taken on the hypervisor. */
  async verifyImage(path: string, format: ImageFormat, expectedVirtualSize: number, limits: StepLimits) {
    const exists = await this.ssh.exec(['test', '-f', path]);
    if (exists.exitCode !== 0) throw refuse(this.ssh, `image ${path} does not exist`);
    const info = await this.diskInfo({ target: '', type: 'file', source: path, format });
    if (info.virtualSize !== expectedVirtualSize) {
      throw refuse(
        this.ssh,
        `image ${path} has virtual size ${info.virtualSize}, the VM's disk ${expectedVirtualSize}`,
      );
    }
    const check = format === 'qcow2' ? `${QemuImg.checkLine(path)} && ` : '';
    const out = await this.watched(
      `${path}.verify.pid`,
      undefined,
      {
        pidFile: `${path}.verify.pid`,
        timeoutSeconds: limits.timeoutSeconds,
        label: `verifying ${path}`,
        script: `${SHA256_FUNCTION}; ${check}stat -c '%s %b' ${quote(path)} && cb_sha256 < ${quote(path)}`,
      },
      limits,
    );
    const [sizes = '', sha256 = ''] = out.toString('utf8').trim().split('\n');
    const [bytes, blocks] = sizes.split(' ').map(Number);
    if (!/^[0-9a-f]{64}$/.test(sha256)) throw refuse(this.ssh, `no checksum for ${path}`);
    return {
      path,
      format,
      bytes: bytes ?? 0,
      allocatedBytes: (blocks ?? 0) * 512,
      virtualSize: info.virtualSize,
      sha256,
    } satisfies VerifiedImage;
  }

  /** Ends every tracked copy or check still running in a set's folder, or a VM's (an abandoned attempt). */
  async endAll(dir: string): Promise<void> {
    const out = await this.ssh.run({
      shell: `[ -d ${quote(dir)} ] || exit 0; find ${quote(dir)} -maxdepth 2 -type f -name '*.pid' -print0`,
    });
    for (const pidFile of out.toString('utf8').split('\0').filter(Boolean)) await endTracked(this.ssh, pidFile);
  }

  /** Runs a tracked command while polling its progress; no progress for stallSeconds ends it. */
  private async watched(
    pidFile: string,
    writes: string | undefined,
    command: Parameters<typeof runTracked>[1],
    limits: StepLimits,
  ): Promise<Buffer> {
    const stop = new AbortController();
    const onAbort = () => stop.abort();
    limits.signal?.addEventListener('abort', onAbort, { once: true });
    let stalled = false;
    let last = { readBytes: -1, writtenBytes: -1 };
    let lastChange = Date.now();
    const poll = setInterval(() => {
      trackedProgress(this.ssh, pidFile, writes)
        .then((progress) => {
          if (!progress) return;
          if (progress.readBytes !== last.readBytes || progress.writtenBytes !== last.writtenBytes) {
            last = progress;
            lastChange = Date.now();
            limits.onProgress?.(progress);
          } else if (Date.now() - lastChange >= limits.stallSeconds * 1000) {
            stalled = true;
            stop.abort();
          }
        })
        .catch(() => undefined); // a failed poll is not progress; the step's own channel reports link failures
    }, PROGRESS_POLL_MS);
    try {
      return await runTracked(this.ssh, command, stop.signal);
    } catch (err) {
      if (stalled) throw new StalledError(`${command.label}: no progress for ${limits.stallSeconds} s; stopped`);
      throw err;
    } finally {
      clearInterval(poll);
      limits.signal?.removeEventListener('abort', onAbort);
    }
  }
}
