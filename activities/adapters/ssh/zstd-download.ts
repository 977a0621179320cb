import { spawn } from 'node:child_process';
import type { FileSink } from '../../file-sink';
import { RemoteCommandError } from './remote-command-error';
import { quote } from './shell-quote';
import type { SshSession } from './ssh-session';

const BATCH_BYTES = 1 << 20;

export interface ZstdDownloadOptions {
  startOffset?: number;
  expectedSize: number;
  onProgress?: (bytesDone: number, bytesTotal: number) => void;
  signal?: AbortSignal;
}

/** Whether the remote host can compress with zstd (the worker's machine has it: bootstrap installs it). */
export async function remoteHasZstd(ssh: SshSession): Promise<boolean> {
  return (await ssh.exec({ shell: 'command -v zstd >/dev/null 2>&1' })).exitCode === 0;
}

/**
 * Copies a remote file compressed with zstd on the wire (`zstd -1` on the remote, decompressed here):
 * mostly-zero VM disks travel at a fraction of their size. The bytes written are the file's own bytes,
 * so the hash and the stored copy are the same as without compression. Resumes from `startOffset`.
 */
export async function zstdDownload(
  ssh: SshSession,
  remotePath: string,
  sink: FileSink,
  options: ZstdDownloadOptions,
): Promise<void> {
  const start = options.startOffset ?? 0;
  // zstd reads the file itself when it can: a pipe in front of it costs the hypervisor a copy of every byte.
  const command =
    start > 0
      ? `tail -c +${start + 1} ${quote(remotePath)} | zstd -q -1 -T0 -c`
      : `zstd -q -1 -T0 -c < ${quote(remotePath)}`;
  const { stdout, finished } = await ssh.execStream({ shell: command });
  const fail = (message: string, cause?: Error) =>
    new RemoteCommandError(
      `${ssh.label}: ${remotePath}: ${message}`,
      { kind: 'transfer', host: ssh.label, command },
      cause,
    );

  // Decompression runs in the local zstd binary: a process (and core) of its own, several times faster
  // than decompressing in this thread. Its output goes to the sink (written and hashed), in order.
  const decompressor = spawn('zstd', ['-d', '-q', '-c'], { stdio: ['pipe', 'pipe', 'ignore'] });
  const decompressed = new Promise<number | null>((resolve) => decompressor.once('close', (code) => resolve(code)));
  decompressor.stdin.on('error', () => undefined); // a failed decompressor is reported by its exit code
  stdout.pipe(decompressor.stdin);
  const onAbort = () => {
    stdout.destroy();
    decompressor.kill('SIGKILL');
  };
  options.signal?.addEventListener('abort', onAbort, { once: true });
  // The decompressed stream comes in pipe-sized chunks; they go to the sink in batches of about a
  // megabyte (one message, one writev), one batch being written while the next one fills.
  let received = start;
  let written = start;
  let batch: Buffer[] = [];
  let batchFrom = start;
  let inFlight: Promise<void> = Promise.resolve();
  const handOver = async () => {
    const [pieces, from, to] = [batch, batchFrom, received];
    batch = [];
    batchFrom = received;
    await inFlight; // in order, and at most one batch waiting for the sink
    inFlight = sink.write(pieces, from).then(() => {
      written = to;
      options.onProgress?.(written, options.expectedSize);
    });
    inFlight.catch(() => undefined); // its error is thrown where it is awaited next
  };
  try {
    for await (const chunk of decompressor.stdout) {
      const bytes = chunk as Buffer;
      if (received + bytes.length > options.expectedSize)
        throw fail(`more data than the expected ${options.expectedSize} bytes`);
      batch.push(bytes);
      received += bytes.length;
      if (received - batchFrom >= BATCH_BYTES) await handOver();
    }
    if (batch.length > 0) await handOver();
    await inFlight;
  } catch (err) {
    decompressor.kill('SIGKILL');
    throw err instanceof RemoteCommandError ? err : fail('stream broke', err as Error);
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
  }
  if (options.signal?.aborted) throw fail('cancelled');
  if ((await decompressed) !== 0) throw fail('the local zstd could not decompress the stream');
  const result = await finished;
  if (result.exitCode !== 0) throw ssh.commandFailure(command, result, `compressing ${remotePath}`);
  if (written !== options.expectedSize) throw fail(`got ${written} bytes, expected ${options.expectedSize}`);
}
