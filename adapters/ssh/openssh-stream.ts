import { spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import type { HostConfig } from '../../config/schema';
import { readHostFiles } from './host-files';
import { keysForHost, knownHostsName } from './known-hosts';
import { RemoteCommandError, type RemoteFailureKind } from './remote-command-error';

/** Most stderr kept from an OpenSSH client: its first lines say what went wrong. */
const MAX_STDERR_BYTES = 64 << 10;

/**
 * Ciphers offered, cheapest first: AES-GCM runs on AES-NI and needs no separate MAC (about 1.4x
 * chacha20-poly1305 here); the others only when a host offers no GCM.
 */
const CIPHERS = 'aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr';

/**
 * The argv of OpenSSH's `ssh` for one bulk stream to `host` running `line` (a command line assembled from
 * `quote`d words). Nothing of the user's or the system's ssh configuration applies (-F /dev/null): the host
 * key is checked against the configured known_hosts file only, strictly (an unknown or changed key ends the
 * connection before the command is sent), only the configured key is offered, no agent, no forwarding, no
 * password prompt, no multiplexing over another connection.
 */
export function opensshArgv(host: HostConfig, line: string): string[] {
  const options: Record<string, string> = {
    BatchMode: 'yes',
    StrictHostKeyChecking: 'yes',
    UserKnownHostsFile: host.knownHostsFile,
    GlobalKnownHostsFile: '/dev/null',
    UpdateHostKeys: 'no',
    CheckHostIP: 'no',
    IdentitiesOnly: 'yes',
    IdentityAgent: 'none',
    PubkeyAuthentication: 'yes',
    PasswordAuthentication: 'no',
    KbdInteractiveAuthentication: 'no',
    ForwardAgent: 'no',
    ForwardX11: 'no',
    ClearAllForwardings: 'yes',
    PermitLocalCommand: 'no',
    ControlMaster: 'no',
    ControlPath: 'none',
    RequestTTY: 'no',
    EscapeChar: 'none',
    LogLevel: 'ERROR',
    ConnectTimeout: String(Math.ceil(host.connectTimeoutSeconds)),
    ServerAliveInterval: String(Math.ceil(host.keepaliveSeconds)),
    ServerAliveCountMax: String(host.keepaliveCountMax),
  };
  return [
    '-F',
    '/dev/null',
    ...Object.entries(options).flatMap(([name, value]) => ['-o', `${name}=${value}`]),
    '-i',
    host.privateKeyFile,
    '-c',
    CIPHERS,
    '-p',
    String(host.port),
    '-l',
    host.user,
    '--',
    host.host,
    line,
  ];
}

/** What OpenSSH's own messages (exit 255) say went wrong, as a failure kind. */
export function opensshFailureKind(stderr: string): RemoteFailureKind {
  if (
    /host key verification failed|remote host identification has changed|host key for .* has changed|no .* host key is known|revoked/i.test(
      stderr,
    )
  )
    return 'host-key';
  if (/permission denied \(|too many authentication failures|bad permissions|unprotected private key/i.test(stderr))
    return 'auth';
  return 'connect';
}

export interface OpensshStreamResult {
  stderr: string;
  exitCode: number | null;
  signal: string | null;
}

export interface OpensshStream {
  stdout: Readable;
  /** The remote command's exit status and stderr; rejects when OpenSSH itself failed (exit 255). */
  finished: Promise<OpensshStreamResult>;
  /** Ends the stream: the client is killed, sshd then ends the remote command (SIGPIPE on its next write). */
  stop(): void;
}

/**
 * Runs `line` on `host` through OpenSSH's `ssh` client, its stdout consumed as a stream: the client
 * decrypts in its own process (its own core), where ssh2 decrypts on the event loop. Before the client
 * starts, the same checks as an ssh2 connection: the key file is refused when others can read it, and
 * known_hosts must list a key for the host (OpenSSH then verifies the presented key against that file).
 */
export async function startOpensshStream(label: string, host: HostConfig, line: string): Promise<OpensshStream> {
  const hostName = knownHostsName(host.host, host.port);
  const where = `${label} (${host.user}@${hostName})`;
  const fail = (kind: RemoteFailureKind, message: string, extra: { stderr?: string; exitCode?: number | null } = {}) =>
    new RemoteCommandError(`${where}: ${message}`, { kind, host: where, command: line, ...extra });
  const { knownHostsText } = await readHostFiles(host, fail);
  if (!keysForHost(knownHostsText, hostName).some((k) => !k.revoked)) {
    throw fail(
      'host-key',
      `no host key for ${hostName} in ${host.knownHostsFile}; add the host's key there (never skip the check)`,
    );
  }

  const env = { ...process.env };
  delete env.SSH_AUTH_SOCK;
  const child = spawn('ssh', opensshArgv(host, line), { stdio: ['ignore', 'pipe', 'pipe'], env });
  const stderr: Buffer[] = [];
  let stderrBytes = 0;
  child.stderr.on('data', (chunk: Buffer) => {
    if (stderrBytes < MAX_STDERR_BYTES) stderr.push(chunk.subarray(0, MAX_STDERR_BYTES - stderrBytes));
    stderrBytes += chunk.length;
  });
  let stopped = false;
  const stop = () => {
    stopped = true;
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  child.stdout.once('close', () => {
    if (!child.stdout.readableEnded) stop(); // destroyed by the reader: nobody takes the rest
  });
  const finished = new Promise<OpensshStreamResult>((resolve, reject) => {
    child.once('error', (err) => reject(fail('connect', `cannot run ssh: ${err.message}`)));
    child.once('close', (code, signal) => {
      const text = Buffer.concat(stderr).toString('utf8');
      if (code === 255) {
        const kind = opensshFailureKind(text);
        const first =
          text
            .trim()
            .split('\n')
            .find((l) => l.trim()) ?? 'ssh exited 255';
        const message =
          kind === 'host-key'
            ? `HOST KEY of ${hostName} not verified against ${host.knownHostsFile} (${first}); check before updating known_hosts`
            : first;
        return reject(fail(kind, message, { stderr: text, exitCode: code }));
      }
      if (signal && !stopped) return reject(fail('connect', `the ssh client was killed by ${signal}`));
      resolve({ stderr: text, exitCode: code, signal });
    });
  });
  finished.catch(() => undefined); // observed by the caller; never an unhandled rejection
  return { stdout: child.stdout, finished, stop };
}
