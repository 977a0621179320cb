import { createHash, randomBytes } from 'node:crypto';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, startChild, stopProcess, waitForPort } from './processes';

/** Where Debian's rclone package puts the binary (absolute: startChild records the executable by path). */
function rcloneBinary(): string {
  return execFileSync('sh', ['-c', 'command -v rclone'], { encoding: 'utf8' }).trim();
}

export interface RcloneRestOptions {
  /** Folder of the server: data/ (the repositories), htpasswd, the client's password file, log. */
  dir: string;
  /** Loopback address the server listens on. */
  address: string;
  /** Kept across restarts of the same sandbox (a stopped server comes back where the client expects it). */
  port?: number;
  /** HTTP basic auth (htpasswd): one user, whose password is written to a file of mode 0600. Default: on. */
  auth?: boolean;
}

export interface SandboxRcloneRest {
  address: string;
  port: number;
  /** rest:http://address:port/ — the server's root; a repository is a path below it. */
  url: string;
  /** The folder rclone serves (repositories are folders in it). */
  dataDir: string;
  /** The HTTP user and the file holding its password (mode 0600), when auth is on. */
  auth?: { user: string; passwordFile: string };
  process: ChildProcess;
  /** Ends this server (by its PID) and waits until it has exited. */
  stop(): Promise<void>;
}

/**
 * `rclone serve restic --append-only` on a loopback address with its own folder: the off-site server of the
 * sandbox. The backup host can add snapshots there, never remove or rewrite them (DELETE is refused). Its PID
 * is recorded like every sandbox server's, and it is ended by that PID.
 */
export async function startRcloneRest(options: RcloneRestOptions): Promise<SandboxRcloneRest> {
  const dataDir = join(options.dir, 'data');
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const port = options.port ?? (await freePort(options.address));
  const args = [
    'serve',
    'restic',
    '--append-only',
    '--addr',
    `${options.address}:${port}`,
    '--config',
    join(options.dir, 'rclone.conf'), // an empty config of its own: none of the user's remotes
  ];
  let auth: SandboxRcloneRest['auth'];
  if (options.auth !== false) {
    const user = 'backup-host';
    const passwordFile = join(options.dir, 'http-password');
    const password = randomBytes(18).toString('base64url');
    writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });
    chmodSync(passwordFile, 0o600);
    const htpasswd = join(options.dir, 'htpasswd');
    const sha = createHash('sha1').update(password).digest('base64');
    writeFileSync(htpasswd, `${user}:{SHA}${sha}\n`, { mode: 0o600 });
    chmodSync(htpasswd, 0o600);
    args.push('--htpasswd', htpasswd);
    auth = { user, passwordFile };
  }
  writeFileSync(join(options.dir, 'rclone.conf'), '', { mode: 0o600 });
  args.push(dataDir);
  const log = openSync(join(options.dir, 'rclone.log'), 'a');
  const child = startChild(rcloneBinary(), args, { stdio: ['ignore', log, log] });
  await waitForPort(options.address, port, 10_000, child);
  return {
    address: options.address,
    port,
    url: `rest:http://${options.address}:${port}/`,
    dataDir,
    ...(auth && { auth }),
    process: child,
    stop: () => stopProcess(child),
  };
}
