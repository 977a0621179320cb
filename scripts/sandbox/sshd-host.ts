import { execFileSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HostConfig } from '../../config/schema';
import { freePort, startChild, stopProcess, waitForPort } from './processes';

export interface SandboxSshHost {
  /** Ready to drop into config `hosts:`. */
  config: HostConfig;
  dir: string;
  process: ChildProcess;
  hostPublicKey: string;
  stop(): Promise<void>;
}

export interface SshHostOptions {
  /** Folder for keys, config and log; kept so a restarted sandbox keeps its host key. */
  dir: string;
  /** Loopback address: 127.0.0.2, 127.0.0.3, ... each simulate one machine. */
  address: string;
  port?: number;
  /** Remote login; a non-root user is created when missing (needs root). */
  user?: string;
  /** Environment of every session (sshd's SetEnv), e.g. a PATH whose first folder wraps a program to watch it. */
  env?: Record<string, string>;
}

function ensureKey(path: string): void {
  if (!existsSync(path))
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'cluster-backup-sandbox', '-f', path]);
}

/** Creates a local user that sshd accepts for key login (no password, not locked). */
export function ensureUser(user: string): void {
  try {
    execFileSync('id', ['-u', user], { stdio: 'ignore' });
  } catch {
    execFileSync('useradd', ['--create-home', '--shell', '/bin/sh', user]);
  }
  // useradd leaves the account locked ('!'), which sshd refuses without PAM.
  execFileSync('usermod', ['-p', '*', user]);
}

/** A folder the sandbox host's login user owns (0700), e.g. where a restore may write. */
export function folderOwnedBy(user: string, path: string): string {
  mkdirSync(path, { recursive: true, mode: 0o700 });
  if (process.getuid?.() === 0) {
    const id = (flag: string) => Number(execFileSync('id', [flag, user], { encoding: 'utf8' }).trim());
    chownSync(path, id('-u'), id('-g'));
  }
  return path;
}

/** An OpenSSH sshd on a loopback address with its own host key, config and authorized_keys. */
export async function startSshHost(options: SshHostOptions): Promise<SandboxSshHost> {
  const user = options.user ?? 'root';
  if (user !== 'root') ensureUser(user);
  const dir = options.dir;
  mkdirSync(join(dir, 'authorized_keys'), { recursive: true });
  mkdirSync('/run/sshd', { recursive: true });
  const hostKey = join(dir, 'ssh_host_ed25519_key');
  const clientKey = join(dir, 'client_ed25519_key');
  ensureKey(hostKey);
  ensureKey(clientKey);
  writeFileSync(join(dir, 'authorized_keys', user), readFileSync(`${clientKey}.pub`));
  chmodSync(join(dir, 'authorized_keys', user), 0o644);

  const port = options.port ?? (await freePort(options.address));
  const sshdConfig = join(dir, 'sshd_config');
  writeFileSync(
    sshdConfig,
    [
      `ListenAddress ${options.address}:${port}`,
      `HostKey ${hostKey}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}/%u`,
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin prohibit-password',
      'UsePAM no',
      // Keys live in a test folder that may sit under /tmp (mode 1777).
      'StrictModes no',
      'MaxSessions 64',
      'MaxStartups 64',
      'Subsystem sftp /usr/lib/openssh/sftp-server',
      ...Object.entries(options.env ?? {}).map(([name, value]) => {
        if (!/^[A-Z_][A-Z0-9_]*$/.test(name) || /[\s"]/.test(value)) throw new Error(`bad SetEnv ${name}=${value}`);
        return `SetEnv ${name}=${value}`;
      }),
      '',
    ].join('\n'),
  );
  const hostPublicKey = readFileSync(`${hostKey}.pub`, 'utf8').trim().split(/\s+/).slice(0, 2).join(' ');
  const knownHostsFile = join(dir, 'known_hosts');
  writeFileSync(knownHostsFile, `[${options.address}]:${port} ${hostPublicKey}\n`);

  const log = openSync(join(dir, 'sshd.log'), 'a');
  const child = startChild('/usr/sbin/sshd', ['-D', '-e', '-f', sshdConfig], { stdio: ['ignore', log, log] });
  await waitForPort(options.address, port, 10_000, child);
  return {
    config: {
      host: options.address,
      port,
      user,
      privateKeyFile: clientKey,
      knownHostsFile,
      keepaliveSeconds: 2,
      keepaliveCountMax: 3,
      connectTimeoutSeconds: 10,
    },
    dir,
    process: child,
    hostPublicKey,
    stop: () => stopProcess(child),
  };
}
