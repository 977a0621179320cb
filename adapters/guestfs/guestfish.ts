import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AdapterError } from '../adapter-error';
import { applianceEnv } from './appliance-env';

/**
 * libguestfs through `guestfish`, the one place that knows its command lines. One appliance per session:
 * `guestfish --ro --listen` boots it once and stays up while `guestfish --remote=<pid> <command> <args...>`
 * sends one command at a time. Every argument is its own argv item (spawned without a shell); guestfish
 * does not split or unquote the words of a command given on its command line, so a guest name with spaces,
 * quotes or newlines reaches libguestfs as it is. Commands that take a *list* in one word (they re-parse it)
 * are never used with names from the guest. Every guest path given here is absolute (starts with "/"), so
 * none reads as an option or as guestfish's ":" command separator. Disks are added read-only (`--ro`:
 * QEMU writes to a throw-away overlay, the image file is never opened for writing).
 */
export interface GuestImage {
  path: string;
  format: 'raw' | 'qcow2';
}

export class GuestfishError extends AdapterError {
  override name = 'GuestfishError';
  constructor(
    message: string,
    kind: 'permanent' | 'refused' | 'transient',
    type = 'GuestfishError',
    options?: { cause?: unknown },
  ) {
    super(message, kind, type, options);
  }
}

/** What `lstatns` says of one guest path. */
export interface GuestStat {
  mode: number;
  size: number;
  uid: number;
  gid: number;
  mtimeSec: number;
  mtimeNsec: number;
  atimeSec: number;
  atimeNsec: number;
}

export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;

/** How long the appliance may take to boot (under TCG, without KVM, 20-90 s). */
const LAUNCH_TIMEOUT_MS = 300_000;
/** Any single command (a tar-out of a large folder takes long: no limit on those). */
const COMMAND_TIMEOUT_MS = 600_000;

interface Ran {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

function run(args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<Ran> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn('guestfish', args, { env, stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => {
      if (err.length < 64 * 1024) err += c.toString('utf8');
    });
    child.on('error', (e: NodeJS.ErrnoException) => reject(spawnFailure(e)));
    child.on('close', (code) => resolvePromise({ code, stdout: Buffer.concat(out), stderr: err }));
  });
}

/** guestfish could not be started: not installed is named as such (and is not retried). */
function spawnFailure(e: NodeJS.ErrnoException): Error {
  if (e.code !== 'ENOENT') return e;
  const message = 'guestfish is not installed (Debian: apt-get install libguestfs-tools)';
  return new GuestfishError(message, 'permanent', 'GuestfishMissing', { cause: e });
}

/**
 * `guestfish --listen`: prints GUESTFISH_PID and forks the server, which keeps the parent's stdout and stderr
 * open for as long as it runs. They go to private files (a pipe would never close, and closing it would
 * break the server's writes); the parent's exit says the server is listening.
 */
async function startListener(
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; stdout: string; stderr: string; dir: string; errFile: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'cluster-backup-guestfish-'));
  const outFile = join(dir, 'stdout');
  const errFile = join(dir, 'stderr');
  const out = openSync(outFile, 'w', 0o600);
  const err = openSync(errFile, 'w', 0o600);
  try {
    const code = await new Promise<number | null>((resolvePromise, reject) => {
      const child = spawn('guestfish', args, { env, stdio: ['ignore', out, err] });
      child.on('error', (e: NodeJS.ErrnoException) => reject(spawnFailure(e)));
      child.on('exit', (c) => resolvePromise(c));
    });
    const stderr = await readFile(errFile, 'utf8');
    if (code !== 0) await rm(dir, { recursive: true, force: true });
    return { code, stdout: await readFile(outFile, 'utf8').catch(() => ''), stderr, dir, errFile };
  } finally {
    closeSync(out);
    closeSync(err);
  }
}

/** libguestfs' own message, without its prefix and the noise around it. */
function reason(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.replace(/^libguestfs: error: /, '').trim())
    .filter((l) => l !== '');
  return lines.slice(-3).join('; ') || 'no message';
}

export class GuestfishSession {
  private closed = false;
  /** How much of the server's stderr was read: what a command adds past it is that command's. */
  private errRead = 0;

  private constructor(
    readonly pid: number,
    private readonly env: NodeJS.ProcessEnv,
    /** The server's private folder (0700) holding its stdout and stderr files, removed by close(). */
    private readonly dir: string,
    private readonly errFile: string,
  ) {}

  /** What the server printed on stderr since the last look (a command's error is printed by the server). */
  private async newStderr(): Promise<string> {
    const all = await readFile(this.errFile).catch(() => Buffer.alloc(0));
    const fresh = all.subarray(this.errRead).toString('utf8');
    this.errRead = all.length;
    return fresh;
  }

  /** Boots one read-only appliance with these disks (in this order: /dev/sda, /dev/sdb, ...). */
  static async open(images: readonly GuestImage[], env: NodeJS.ProcessEnv = applianceEnv()): Promise<GuestfishSession> {
    const args = ['--ro', '--listen'];
    for (const image of images) args.push(`--format=${image.format}`, '-a', image.path);
    const started = await startListener(args, env);
    const pid = /GUESTFISH_PID=(\d+)/.exec(started.stdout)?.[1];
    if (started.code !== 0 || !pid) {
      await rm(started.dir, { recursive: true, force: true });
      throw new GuestfishError(`guestfish did not start: ${reason(started.stderr)}`, 'permanent', 'GuestfishStart');
    }
    const session = new GuestfishSession(Number(pid), env, started.dir, started.errFile);
    session.errRead = Buffer.byteLength(started.stderr);
    try {
      await session.command(['run'], LAUNCH_TIMEOUT_MS);
    } catch (err) {
      await session.close();
      throw new GuestfishError(
        `the libguestfs appliance did not boot: ${(err as Error).message} (libguestfs-test-tool tells why)`,
        'permanent',
        'GuestfsLaunch',
        { cause: err },
      );
    }
    return session;
  }

  /** One guestfish command, its words as argv; stdout as bytes. A failed command throws GuestfishError. */
  private async command(words: string[], timeoutMs = COMMAND_TIMEOUT_MS): Promise<Buffer> {
    if (this.closed) throw new GuestfishError('the guestfish session is closed', 'permanent');
    // `--` ends guestfish's own options: a word after it is never taken for one. The leading "-" keeps the
    // server up when the command fails (else it exits on the first error); the failure is then only in the
    // server's stderr, as "libguestfs: error: ..." (the client's exit status stays 0).
    const [verb, ...args] = words;
    const ran = await run([`--remote=${this.pid}`, '--', `-${verb}`, ...args], this.env, timeoutMs);
    const serverSaid = await this.newStderr();
    if (ran.code !== 0 || /^libguestfs: error: /m.test(ran.stderr) || /^libguestfs: error: /m.test(serverSaid)) {
      const why = reason(`${ran.stderr}\n${serverSaid}`);
      const missing = /No such file or directory|not found/.test(why);
      throw new GuestfishError(
        `guestfish ${verb}: ${why}`,
        'permanent',
        missing ? 'GuestPathMissing' : 'GuestfishCommand',
      );
    }
    return ran.stdout;
  }

  private async text(words: string[]): Promise<string> {
    return (await this.command(words)).toString('utf8');
  }

  /** `device: type` for every filesystem libguestfs found (partitions, LVM, whole disks). */
  async listFilesystems(): Promise<{ device: string; type: string }[]> {
    return (await this.text(['list-filesystems']))
      .split('\n')
      .filter((l) => l.includes(': '))
      .map((l) => {
        const at = l.lastIndexOf(': ');
        return { device: l.slice(0, at), type: l.slice(at + 2) };
      });
  }

  async listPartitions(): Promise<string[]> {
    return (await this.text(['list-partitions'])).split('\n').filter((l) => l !== '');
  }

  /** Operating-system roots found by inspection (none for a data disk). */
  async inspectOs(): Promise<string[]> {
    return (await this.text(['inspect-os'])).split('\n').filter((l) => l.startsWith('/'));
  }

  /** An OS root's mount points (`/`, `/boot`, ...) and their devices, shortest mount point first. */
  async inspectMountpoints(root: string): Promise<{ mountpoint: string; device: string }[]> {
    return (await this.text(['inspect-get-mountpoints', root]))
      .split('\n')
      .filter((l) => l.includes(': '))
      .map((l) => {
        const at = l.indexOf(': ');
        return { mountpoint: l.slice(0, at), device: l.slice(at + 2) };
      })
      .sort((a, b) => a.mountpoint.length - b.mountpoint.length);
  }

  async mountReadOnly(device: string, mountpoint: string): Promise<void> {
    await this.command(['mount-ro', device, mountpoint]);
  }

  /** lstat of a guest path (a symlink itself, not its target); undefined when it does not exist. */
  async lstat(path: string): Promise<GuestStat | undefined> {
    let printed: string;
    try {
      printed = await this.text(['lstatns', guestPath(path)]);
    } catch (err) {
      if (err instanceof GuestfishError && err.type === 'GuestPathMissing') return undefined;
      throw err;
    }
    const fields = new Map<string, number>();
    for (const line of printed.split('\n')) {
      const m = /^\s*(st_\w+): (-?\d+)$/.exec(line);
      if (m) fields.set(m[1]!, Number(m[2]));
    }
    const get = (k: string) => {
      const v = fields.get(k);
      if (v === undefined) throw new GuestfishError(`lstatns printed no ${k}`, 'permanent', 'GuestfishOutput');
      return v;
    };
    return {
      mode: get('st_mode'),
      size: get('st_size'),
      uid: get('st_uid'),
      gid: get('st_gid'),
      mtimeSec: get('st_mtime_sec'),
      mtimeNsec: get('st_mtime_nsec'),
      atimeSec: get('st_atime_sec'),
      atimeNsec: get('st_atime_nsec'),
    };
  }

  /** A regular file's bytes into a local file (created by guestfish; the caller makes its folder private). */
  async download(path: string, localFile: string): Promise<void> {
    await this.command(['download', guestPath(path), localPath(localFile)]);
  }

  /** A folder's tree as a tar file (GNU tar in the appliance: modes, whole-second mtimes, symlinks as links). */
  async tarOut(path: string, localFile: string): Promise<void> {
    await this.command(['tar-out', guestPath(path), localPath(localFile), 'numericowner:true']);
  }

  /** The names in a guest folder, NUL-separated by libguestfs, as raw bytes (not every name is UTF-8). */
  async listNames(path: string, localFile: string): Promise<void> {
    await this.command(['ls0', guestPath(path), localPath(localFile)]);
  }

  /** Ends the appliance (also on every error path: a session must never outlive its command). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const ran = await run([`--remote=${this.pid}`, '--', 'exit'], this.env, 60_000).catch(() => undefined);
    if (ran?.code !== 0) {
      try {
        process.kill(this.pid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** A guest path handed to guestfish: absolute, without NUL. */
export function guestPath(path: string): string {
  if (!path.startsWith('/') || path.includes('\0'))
    throw new GuestfishError(`guest path ${JSON.stringify(path)} is not absolute`, 'refused', 'GuestPathRefused');
  return path;
}

function localPath(path: string): string {
  if (!path.startsWith('/')) throw new GuestfishError(`local path ${JSON.stringify(path)} is not absolute`, 'refused');
  return path;
}

/**
 * `guestmount --ro`: a read-only FUSE view of the guest's filesystems at `target` (restore mount). guestmount
 * boots its own appliance, mounts, and then forks into the background (it serves the mount until
 * `guestunmount`); without `allow_other` only this user can see into the mount. Its stderr goes to a
 * private file (a pipe would stay open with the background process).
 */
export async function guestmount(
  images: readonly GuestImage[],
  mounts: readonly { device: string; mountpoint: string }[],
  target: string,
  pidFile: string,
  env: NodeJS.ProcessEnv = applianceEnv(),
): Promise<void> {
  const args = ['--ro', '--pid-file', localPath(pidFile)];
  for (const image of images) args.push(`--format=${image.format}`, '-a', image.path);
  for (const m of mounts) args.push('-m', `${m.device}:${m.mountpoint}`);
  args.push('--', localPath(target));
  const dir = await mkdtemp(join(tmpdir(), 'cluster-backup-guestmount-'));
  const errFile = join(dir, 'stderr');
  const err = openSync(errFile, 'w', 0o600);
  try {
    const code = await new Promise<number | null>((resolvePromise, reject) => {
      const child = spawn('guestmount', args, { env, stdio: ['ignore', 'ignore', err], timeout: LAUNCH_TIMEOUT_MS });
      child.on('error', reject);
      child.on('exit', (c) => resolvePromise(c));
    });
    if (code !== 0)
      throw new GuestfishError(
        `guestmount ${target}: ${reason(await readFile(errFile, 'utf8'))}`,
        'permanent',
        'GuestmountError',
      );
  } finally {
    closeSync(err);
    await rm(dir, { recursive: true, force: true });
  }
}

/** Whether a FUSE filesystem is mounted at `target` (as /proc/self/mounts says; its octal escapes undone). */
export async function fuseMountedAt(target: string): Promise<boolean> {
  const mounts = await readFile('/proc/self/mounts', 'utf8').catch(() => '');
  return mounts.split('\n').some((line) => {
    const [, where, type] = line.split(' ');
    if (!where || !type?.startsWith('fuse')) return false;
    return where.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))) === target;
  });
}

/** `guestunmount`: ends a guestmount (it waits until the FUSE process is gone, retrying while busy). */
export async function guestunmount(target: string): Promise<void> {
  const ran = await new Promise<{ code: number | null; stderr: string }>((resolvePromise, reject) => {
    const child = spawn('guestunmount', ['--retry=5', '--', localPath(target)], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => resolvePromise({ code, stderr }));
  });
  if (ran.code !== 0)
    throw new GuestfishError(
      `guestunmount ${target}: ${ran.stderr.trim() || `exit ${ran.code}`}`,
      ran.code === 3 ? 'refused' : 'permanent',
      ran.code === 3 ? 'NotMounted' : ran.code === 2 ? 'MountBusy' : 'GuestunmountError',
    );
}
