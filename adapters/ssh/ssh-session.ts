import { connect as netConnect, type Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { Client, type ClientChannel, type ConnectConfig, type SFTPWrapper } from 'ssh2';
import type { HostConfig } from '../../config/schema';
import { readHostFiles } from './host-files';
import { keysForHost, knownHostsName } from './known-hosts';
import { RemoteCommandError } from './remote-command-error';
import { startOpensshStream } from './openssh-stream';
import { commandLine } from './shell-quote';

/** Which SSH client carries bulk streams (config transfer.bulkClient). */
export type BulkClient = 'openssh' | 'ssh2';

export interface ExecResult {
  stdout: Buffer;
  stderr: string;
  exitCode: number | null;
  signal: string | null;
}

export interface ExecOptions {
  signal?: AbortSignal;
  /** Written to the command's stdin, which is then closed (no stdin: closed at once). */
  input?: Buffer | string;
  /** What the command does, for messages, when the command line itself is a long script. */
  label?: string;
  /** Most stdout kept (default MAX_OUTPUT_BYTES): a command sending more is stopped, with an error. */
  maxOutputBytes?: number;
}

/**
 * Most stdout an exec keeps in memory: far above anything a collected command prints (hashes, JSON, XML);
 * what can be long (a tree listing, a file) is read as a stream.
 */
export const MAX_OUTPUT_BYTES = 16 << 20;
/** Most stderr kept per command: its first lines say what went wrong; an endless stderr is not kept. */
const MAX_STDERR_BYTES = 64 << 10;

/** argv words (each quoted for the remote shell), or a pipeline already assembled from `quote`d words. */
export type RemoteCommand = readonly string[] | { readonly shell: string };

const HOST_KEY_ALGORITHMS: Record<string, string[]> = {
  'ssh-rsa': ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'],
};

function toCommandLine(command: RemoteCommand): string {
  return 'shell' in command ? command.shell : commandLine(command as readonly string[]);
}

/** The command for a message: its label, or the line itself, shortened when it is a long script. */
function briefOf(line: string, label?: string): string {
  return (
    label ?? (line.length > 100 || line.includes('\n') ? `\`${line.split('\n')[0]!.slice(0, 100)} …\`` : `\`${line}\``)
  );
}

/** Counts what `stream` is handed (by ssh2, as it arrives), without a listener that would change its flow. */
function countPushes(stream: { push(chunk: unknown, ...rest: unknown[]): boolean }, count: (bytes: number) => void) {
  const push = stream.push.bind(stream);
  stream.push = (chunk: unknown, ...rest: unknown[]) => {
    if (Buffer.isBuffer(chunk)) count(chunk.length);
    return push(chunk, ...rest);
  };
}

/**
 * One SSH connection to one host, reused for every command and file of an activity.
 * Host keys are always checked against the configured known_hosts file; there is no way to turn that off.
 */
export class SshSession {
  private sftpChannel?: Promise<SFTPWrapper>;
  private received = 0;

  private constructor(
    readonly label: string,
    private readonly client: Client,
    private readonly sock: Socket,
    private readonly host: HostConfig,
  ) {}

  static async connect(label: string, host: HostConfig): Promise<SshSession> {
    const where = `${label} (${host.user}@${knownHostsName(host.host, host.port)})`;
    const fail = (kind: 'auth' | 'host-key' | 'connect', message: string, cause?: Error) =>
      new RemoteCommandError(`${where}: ${message}`, { kind, host: label }, cause);

    const { privateKey, knownHostsText } = await readHostFiles(host, fail);
    const hostName = knownHostsName(host.host, host.port);
    const known = keysForHost(knownHostsText, hostName);
    const trusted = known.filter((k) => !k.revoked);
    if (trusted.length === 0) {
      throw fail(
        'host-key',
        `no host key for ${hostName} in ${host.knownHostsFile}; add the host's key there (never skip the check)`,
      );
    }

    let hostKeyProblem: string | undefined;
    const config: ConnectConfig = {
      username: host.user,
      privateKey,
      readyTimeout: host.connectTimeoutSeconds * 1000,
      keepaliveInterval: host.keepaliveSeconds * 1000,
      keepaliveCountMax: host.keepaliveCountMax,
      algorithms: {
        serverHostKey: [...new Set(trusted.flatMap((k) => HOST_KEY_ALGORITHMS[k.keyType] ?? [k.keyType]))] as never,
      },
      hostVerifier: (presented: Buffer) => {
        if (known.some((k) => k.revoked && k.key.equals(presented))) {
          hostKeyProblem = `host key of ${hostName} is marked @revoked in ${host.knownHostsFile}`;
        } else if (!trusted.some((k) => k.key.equals(presented))) {
          hostKeyProblem =
            `HOST KEY MISMATCH for ${hostName}: the key it presented is not the one in ${host.knownHostsFile}. ` +
            'Someone may be intercepting the connection, or the host was reinstalled; check before updating known_hosts.';
        }
        return hostKeyProblem === undefined;
      },
    };

    const client = new Client();
    // Nagle off: the pipelined SFTP reads are small requests; with Nagle on throughput falls 5-10x.
    const sock = netConnect({ host: host.host, port: host.port, noDelay: true });
    await new Promise<void>((resolve, reject) => {
      sock.once('error', () => undefined); // surfaced through the client's error event
      client.once('ready', resolve);
      client.once('error', (err: Error & { level?: string }) => {
        sock.destroy();
        if (hostKeyProblem) reject(fail('host-key', hostKeyProblem));
        else if (err.level === 'client-authentication')
          reject(fail('auth', `key ${host.privateKeyFile} was refused`, err));
        else reject(fail('connect', err.message, err));
      });
      client.connect({ ...config, sock });
    });
    const session = new SshSession(where, client, sock, host);
    // After 'ready', a later error (keepalive timeout, reset) ends the connection; pending calls see 'close'.
    client.on('error', () => undefined);
    return session;
  }

  /**
   * Bytes received so far from the host's commands and SFTP replies (not keepalives): a step that sees it
   * stand still is waiting on a host that sends nothing.
   */
  get bytesReceived(): number {
    return this.received;
  }

  /** Runs a command; never throws for a non-zero exit (see `run`). */
  async exec(command: RemoteCommand, options: ExecOptions = {}): Promise<ExecResult> {
    const { channel, finished } = await this.openChannel(command, {
      maxBytes: options.maxOutputBytes ?? MAX_OUTPUT_BYTES,
      label: options.label,
    });
    const onAbort = () => channel.close();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    channel.end(options.input);
    try {
      const result = await finished.catch((err: unknown) => {
        if (!options.signal?.aborted) throw err;
        return undefined;
      });
      if (options.signal?.aborted || !result) throw this.linkFailure(toCommandLine(command), new Error('cancelled'));
      return result;
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
    }
  }

  /**
   * Runs a command whose stdout is consumed as a stream (with backpressure); `finished` settles with the
   * exit status once the command ends.
   */
  async execStream(command: RemoteCommand): Promise<{ stdout: Readable; finished: Promise<ExecResult> }> {
    const { channel, finished } = await this.openChannel(command);
    channel.end();
    return { stdout: channel, finished };
  }

  /**
   * Like execStream, for a bulk stream (an image, a disk): with `client: 'openssh'` the command runs over a
   * connection of its own made by OpenSSH's `ssh` (see startOpensshStream: same key file, same known_hosts,
   * strict host key check), which decrypts in its own process instead of on this event loop. `stop` ends it.
   */
  async bulkStream(
    command: RemoteCommand,
    client: BulkClient,
  ): Promise<{ stdout: Readable; finished: Promise<ExecResult>; stop(): void }> {
    if (client === 'ssh2') {
      const { stdout, finished } = await this.execStream(command);
      return { stdout, finished, stop: () => stdout.destroy() };
    }
    const stream = await startOpensshStream(this.label, this.host, toCommandLine(command));
    countPushes(stream.stdout as unknown as Parameters<typeof countPushes>[0], (bytes) => (this.received += bytes));
    const finished = stream.finished.then((r) => ({ ...r, stdout: Buffer.alloc(0) }));
    finished.catch(() => undefined); // observed by the caller; never an unhandled rejection
    return { stdout: stream.stdout, finished, stop: stream.stop };
  }

  /**
   * Runs a command whose stdin is fed as a stream (with backpressure: `write` returns false while the SSH
   * window is full); end `stdin` to let it finish. `finished` settles with its exit status and stdout.
   */
  async execWithInput(command: RemoteCommand): Promise<{ stdin: Writable; finished: Promise<ExecResult> }> {
    const { channel, finished } = await this.openChannel(command, { maxBytes: MAX_OUTPUT_BYTES });
    return { stdin: channel, finished };
  }

  /**
   * An exec channel and its outcome: exit status, stderr (its start), and stdout when `collect` says how
   * much of it may be kept; a command sending more is stopped and `finished` rejects, naming the cap.
   */
  private openChannel(
    command: RemoteCommand,
    collect?: { maxBytes: number; label?: string },
  ): Promise<{ channel: ClientChannel; finished: Promise<ExecResult> }> {
    const line = toCommandLine(command);
    return new Promise((resolve, reject) => {
      this.client.exec(line, (err, channel) => {
        if (err) return reject(this.linkFailure(line, err));
        const count = (bytes: number) => (this.received += bytes);
        countPushes(channel, count);
        countPushes(channel.stderr, count);
        const stdout: Buffer[] = [];
        const stderr: Buffer[] = [];
        let [stdoutBytes, stderrBytes] = [0, 0];
        let tooMuch: RemoteCommandError | undefined;
        let exitCode: number | null = null;
        let signal: string | null = null;
        if (collect) {
          channel.on('data', (chunk: Buffer) => {
            stdoutBytes += chunk.length;
            if (tooMuch) return;
            if (stdoutBytes <= collect.maxBytes) return void stdout.push(chunk);
            tooMuch = this.outputTooLong(line, collect.maxBytes, collect.label);
            stdout.length = 0;
            channel.close();
          });
        }
        channel.stderr.on('data', (chunk: Buffer) => {
          if (stderrBytes < MAX_STDERR_BYTES) stderr.push(chunk.subarray(0, MAX_STDERR_BYTES - stderrBytes));
          stderrBytes += chunk.length;
        });
        channel.on('exit', (code: number | null, sig?: string) => {
          exitCode = code;
          signal = sig ?? null;
        });
        const finished = new Promise<ExecResult>((done, fail) =>
          channel.on('close', () =>
            tooMuch
              ? fail(tooMuch)
              : exitCode === null && signal === null
                ? fail(this.linkFailure(line, new Error('connection closed before the command finished')))
                : done({
                    stdout: Buffer.concat(stdout),
                    stderr: Buffer.concat(stderr).toString('utf8'),
                    exitCode,
                    signal,
                  }),
          ),
        );
        finished.catch(() => undefined); // observed by the caller; never an unhandled rejection
        resolve({ channel, finished });
      });
    });
  }

  /** A command that sent more output than may be kept: for good (the same command would again). */
  outputTooLong(line: string, maxBytes: number, label?: string): RemoteCommandError {
    return new RemoteCommandError(
      `${this.label}: ${briefOf(line, label)} sent more than ${maxBytes} bytes of output (the most kept); stopped`,
      { kind: 'unsafe-remote-data', host: this.label, command: line },
    );
  }

  /** Runs a command and returns its stdout; a non-zero exit becomes a RemoteCommandError. */
  async run(command: RemoteCommand, options: ExecOptions = {}): Promise<Buffer> {
    const result = await this.exec(command, options);
    if (result.exitCode !== 0) throw this.commandFailure(toCommandLine(command), result, options.label);
    return result.stdout;
  }

  commandFailure(line: string, result: ExecResult, label?: string): RemoteCommandError {
    const how = result.signal ? `was killed by ${result.signal}` : `exited ${result.exitCode}`;
    const firstLine = result.stderr.trim().split('\n')[0] ?? '';
    // The message names the command briefly; the whole script is in the failure's details.
    return new RemoteCommandError(`${this.label}: ${briefOf(line, label)} ${how}${firstLine ? `: ${firstLine}` : ''}`, {
      kind: 'command',
      host: this.label,
      command: line,
      exitCode: result.exitCode,
      signal: result.signal,
      stderr: result.stderr,
    });
  }

  linkFailure(what: string, cause: Error): RemoteCommandError {
    return new RemoteCommandError(
      `${this.label}: ${what}: ${cause.message}`,
      { kind: 'connect', host: this.label, command: what },
      cause,
    );
  }

  sftp(): Promise<SFTPWrapper> {
    this.sftpChannel ??= new Promise((resolve, reject) =>
      this.client.sftp((err, sftp) => {
        if (err) return reject(this.linkFailure('sftp subsystem', err));
        countPushes(sftp as unknown as Parameters<typeof countPushes>[0], (bytes) => (this.received += bytes));
        resolve(sftp);
      }),
    );
    return this.sftpChannel;
  }

  /**
   * Sends the packets `send` produces in one system call (Nagle is off, so each would be its own):
   * a burst of SFTP read requests costs one write instead of one per request.
   */
  inOneWrite(send: () => void): void {
    this.sock.cork();
    try {
      send();
    } finally {
      this.sock.uncork();
    }
  }

  close(): void {
    this.client.end();
  }
}

/** Connects, hands the session to `use`, and always closes it. */
export async function withSsh<T>(label: string, host: HostConfig, use: (ssh: SshSession) => Promise<T>): Promise<T> {
  const ssh = await SshSession.connect(label, host);
  try {
    return await use(ssh);
  } finally {
    ssh.close();
  }
}
