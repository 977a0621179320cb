import { spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import type { FileSink } from './file-sink';
import { RemoteCommandError } from '../ssh/remote-command-error';
import { quote } from '../ssh/shell-quote';
import type { BulkClient, SshSession } from '../ssh/ssh-session';
import { RateCap } from './rate-cap';

/** Decompressed or not, the stream goes to the sink in batches of about this size (one message, one writev). */
const BATCH_BYTES = 1 << 20;
/**
 * Batches handed to the sink and not yet written: the sink's thread hashes one while the kernel writes
 * others. A pipe from the ssh client holds only 64 KiB, so with one batch in flight the client (and the
 * remote sender) would stop whenever the store stalls for a moment. Memory: this many x BATCH_BYTES.
 */
const WRITES_IN_FLIGHT = 8;

export interface StreamDownloadOptions {
  /** zstd on the wire: compressed on the remote host, decompressed by the local zstd. */
  compressed: boolean;
  /** Which SSH client carries the stream (transfer.bulkClient): ssh2 (the default here) or OpenSSH's `ssh`. */
  bulkClient?: BulkClient;
  startOffset?: number;
  expectedSize: number;
  /** Bandwidth cap on what comes out of the stream (like rsync --bwlimit). 0: none. */
  maxBytesPerSecond?: number;
  onProgress?: (bytesDone: number, bytesTotal: number) => void;
  signal?: AbortSignal;
}

/** The zstd sample: this many blocks of SAMPLE_BLOCK_BYTES, spread evenly over the file. */
const SAMPLE_BLOCKS = 16;
const SAMPLE_BLOCK_BYTES = 1 << 20;
/**
 * zstd on the wire pays when the sample shrinks to at most this share: bench/image-pull on loopback, where
 * CPU and not the link limits, had zstd ahead on a mostly-zero image (about a tenth after zstd -1) and
 * behind on random data (no gain, the compressor's and decompressor's CPU lost); over a slower link the
 * gain only grows.
 */
const ZSTD_PAYS_BELOW = 0.5;

/**
 * Whether zstd on the wire pays for this file (store.compression: auto): the remote host compresses a sample
 * (SAMPLE_BLOCKS MiB spread over the file) with the zstd -1 of the stream; false when it has no zstd (the
 * worker's machine has it: bootstrap installs it).
 */
export async function zstdPaysFor(ssh: SshSession, path: string, size: number): Promise<boolean> {
  const blocks = Math.ceil(size / SAMPLE_BLOCK_BYTES);
  if (blocks === 0) return false;
  const picked = [
    ...new Set(Array.from({ length: SAMPLE_BLOCKS }, (_, i) => Math.floor((i * blocks) / SAMPLE_BLOCKS))),
  ];
  const sampled = picked.reduce((sum, b) => sum + Math.min(SAMPLE_BLOCK_BYTES, size - b * SAMPLE_BLOCK_BYTES), 0);
  const reads = picked.map((b) => `dd if=${quote(path)} bs=${SAMPLE_BLOCK_BYTES} skip=${b} count=1 2>/dev/null`);
  const result = await ssh.exec({
    shell: `command -v zstd >/dev/null 2>&1 || exit 3; { ${reads.join('; ')}; } | zstd -q -1 -c | wc -c`,
  });
  const compressed = Number(result.stdout.toString().trim());
  return result.exitCode === 0 && compressed > 0 && compressed <= ZSTD_PAYS_BELOW * sampled;
}

/** The remote side: the file from `start` on, read by the program that sends it (no pipe copy when it can). */
function remoteCommand(path: string, start: number, compressed: boolean): string {
  const from = start > 0 ? `tail -c +${start + 1} < ${quote(path)}` : undefined;
  if (!compressed) return from ?? `cat < ${quote(path)}`;
  return from ? `${from} | zstd -q -1 -T0 -c` : `zstd -q -1 -T0 -c < ${quote(path)}`;
}

/**
 * Copies a remote file as one stream over an SSH exec channel, as scp and rsync do: the host sends without
 * waiting for requests, and each packet's payload goes to the sink as it is (no reassembly as with SFTP).
 * Optionally zstd on the wire, for mostly-empty VM disks; the bytes written are the file's own bytes either
 * way, so the hash and the stored copy are the same. Resumes from `startOffset`.
 */
export async function streamDownload(
  ssh: SshSession,
  remotePath: string,
  sink: FileSink,
  options: StreamDownloadOptions,
): Promise<void> {
  const start = options.startOffset ?? 0;
  const command = remoteCommand(remotePath, start, options.compressed);
  const { stdout: remote, finished, stop } = await ssh.bulkStream({ shell: command }, options.bulkClient ?? 'ssh2');
  const fail = (message: string, cause?: Error) =>
    new RemoteCommandError(
      `${ssh.label}: ${remotePath}: ${message}`,
      { kind: 'transfer', host: ssh.label, command },
      cause,
    );

  // Decompression runs in the local zstd binary: a process (and core) of its own, several times faster
  // than decompressing in this thread.
  const decompressor = options.compressed
    ? spawn('zstd', ['-d', '-q', '-c'], { stdio: ['pipe', 'pipe', 'ignore'] })
    : undefined;
  const decompressed = new Promise<number | null>((resolve) =>
    decompressor ? decompressor.once('close', (code) => resolve(code)) : resolve(0),
  );
  if (decompressor) {
    decompressor.stdin.on('error', () => undefined); // a failed decompressor is reported by its exit code
    remote.pipe(decompressor.stdin);
  }
  const source: Readable = decompressor?.stdout ?? remote;
  const onAbort = () => {
    stop();
    remote.destroy();
    decompressor?.kill('SIGKILL');
  };
  options.signal?.addEventListener('abort', onAbort, { once: true });

  const cap = new RateCap(options.maxBytesPerSecond);
  let received = start;
  let written = start;
  let batch: Buffer[] = [];
  let batchFrom = start;
  // Batches written (and hashed) in file order; a later one may start before an earlier one is done.
  let tail: Promise<void> = Promise.resolve();
  const inFlight: Promise<void>[] = [];
  let localFailure: Error | undefined;
  // Up to WRITES_IN_FLIGHT batches are written while the next one fills: the sender is held back (SSH window,
  // or the pipe from the ssh client) only when the store falls that far behind.
  const handOver = async () => {
    const [pieces, from, to] = [batch, batchFrom, received];
    batch = [];
    batchFrom = received;
    while (inFlight.length >= WRITES_IN_FLIGHT) await inFlight.shift();
    const write = sink.write(pieces, from);
    const done = Promise.all([tail, write]).then(
      () => {
        written = to;
        options.onProgress?.(written, options.expectedSize);
      },
      (err: Error) => {
        localFailure ??= err; // the store's own error (ENOSPC...), not the link's: passed on as it is
        throw localFailure;
      },
    );
    done.catch(() => undefined); // its error is thrown where it is awaited next
    tail = done;
    inFlight.push(done);
  };
  try {
    for await (const chunk of source) {
      const bytes = chunk as Buffer;
      if (received + bytes.length > options.expectedSize)
        throw fail(`more data than the expected ${options.expectedSize} bytes`);
      batch.push(bytes);
      received += bytes.length;
      if (received - batchFrom < BATCH_BYTES) continue;
      await handOver();
      await cap.hold(received - start);
    }
    if (batch.length > 0) await handOver();
    await tail;
  } catch (err) {
    onAbort();
    await Promise.allSettled(inFlight); // the file is not closed under a write still running
    if (options.signal?.aborted) throw fail('cancelled');
    throw err instanceof RemoteCommandError || err === localFailure ? err : fail('stream broke', err as Error);
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
  }
  if (options.signal?.aborted) throw fail('cancelled');
  // A cut link ends the stream early: the channel's end says so before the byte count does.
  const result = await finished;
  if (result.exitCode !== 0) throw ssh.commandFailure(command, result, `sending ${remotePath}`);
  if ((await decompressed) !== 0) throw fail('the local zstd could not decompress the stream');
  if (written !== options.expectedSize) throw fail(`got ${written} bytes, expected ${options.expectedSize}`);
}
