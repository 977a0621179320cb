import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer, connect } from 'node:net';

/** A free TCP port on a loopback address (the kernel picks it). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

export async function waitForPort(host: string, port: number, timeoutMs: number, child?: ChildProcess): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child && child.exitCode !== null)
      throw new Error(`process exited (${child.exitCode}) before listening on ${host}:${port}`);
    const open = await new Promise<boolean>((resolve) => {
      const sock = connect({ host, port });
      sock.once('connect', () => (sock.destroy(), resolve(true)));
      sock.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`nothing listening on ${host}:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** PIDs whose parent is `pid` (from /proc), so that a harness can end exactly what it started. */
export function childPids(pid: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) children.push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return children;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** Ends a process we started and the children it forked (by PID), waiting until it has exited. */
export async function stopProcess(child: ChildProcess, timeoutMs = 5000): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const pid = child.pid;
  const children = childPids(pid);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  signal(pid, 'SIGTERM');
  for (const c of children) signal(c, 'SIGTERM');
  const timer = setTimeout(() => {
    signal(pid, 'SIGKILL');
    for (const c of children) signal(c, 'SIGKILL');
  }, timeoutMs);
  await exited;
  clearTimeout(timer);
}

/**
 * Starts a long-running child whose output goes to a log file descriptor (or is ignored).
 * Under the test runner ($CLUSTER_BACKUP_PID_DIR set) its PID is recorded until it exits, so that the
 * runner can end exactly the processes a killed or timed-out test file left behind.
 */
export function startChild(command: string, args: string[], options: SpawnOptions = {}): ChildProcess {
  const child = spawn(command, args, { stdio: 'ignore', ...options });
  child.on('error', (err) => console.error(`${command}: ${err.message}`));
  const pidDir = process.env.CLUSTER_BACKUP_PID_DIR;
  if (pidDir && child.pid !== undefined) {
    const record = join(pidDir, String(child.pid));
    writeFileSync(record, realpathSync(command)); // commands here are absolute paths
    child.once('exit', () => rmSync(record, { force: true }));
  }
  return child;
}

/**
 * Under the test runner: records a folder whose path marks processes started on our behalf by a daemon we
 * started (QEMU guests started by our libvirtd have their disks there), so that they too can be ended.
 */
export function recordOwnedFolder(folder: string): void {
  const pidDir = process.env.CLUSTER_BACKUP_PID_DIR;
  if (pidDir) writeFileSync(join(pidDir, `folder-${process.pid}-${Date.now()}`), folder);
}

function pidsWithArgument(folder: string): number[] {
  return readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .filter((e) => {
      try {
        return readFileSync(`/proc/${e}/cmdline`, 'utf8').includes(`${folder}/`);
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** Ends recorded processes that are still the ones recorded (same executable), with their children. */
export function endRecordedProcesses(pidDir: string): number[] {
  const ended: number[] = [];
  for (const entry of readdirSync(pidDir).filter((e) => e.startsWith('folder-'))) {
    for (const pid of pidsWithArgument(readFileSync(join(pidDir, entry), 'utf8'))) {
      signal(pid, 'SIGKILL');
      ended.push(pid);
    }
  }
  for (const entry of readdirSync(pidDir).filter((e) => /^\d+$/.test(e))) {
    const pid = Number(entry);
    const executable = readFileSync(join(pidDir, entry), 'utf8');
    try {
      if (readlinkSync(`/proc/${pid}/exe`) !== executable) continue; // the PID now belongs to something else
    } catch {
      continue; // gone
    }
    for (const c of childPids(pid)) signal(c, 'SIGKILL');
    signal(pid, 'SIGKILL');
    ended.push(pid);
  }
  return ended;
}
