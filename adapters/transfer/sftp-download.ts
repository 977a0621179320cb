import type { SFTPWrapper } from 'ssh2';
import type { FileSink } from './file-sink';
import { RemoteCommandError } from '../ssh/remote-command-error';
import { RateCap } from './rate-cap';

export interface DownloadOptions {
  /** Reads kept in flight; memory use is about parallelReads x chunkBytes, whatever the file's size. */
  parallelReads: number;
  chunkBytes: number;
  /** Bandwidth cap (like rsync --bwlimit), so a backup does not starve the compute host's link. 0: none. */
  maxBytesPerSecond?: number;
  /** Resume: the local file already holds this many correct bytes. */
  startOffset?: number;
  /** The size the listing promised; a remote file of another size is a changed file, not a copy. */
  expectedSize?: number;
  onProgress?: (bytesDone: number, bytesTotal: number) => void;
  signal?: AbortSignal;
  /** Sends the requests `send` makes together (SshSession.inOneWrite); default: as they come. */
  inOneWrite?: (send: () => void) => void;
}

/**
 * Copies a remote file into a local file sink with pipelined SFTP reads, handed over in file order.
 * ssh2's fastGet defaults (64 x 32 KiB) are several times slower than OpenSSH; this keeps a deep
 * queue of near-maximal reads and never holds more than the window in memory.
 */
export async function sftpDownload(
  sftp: SFTPWrapper,
  host: string,
  remotePath: string,
  sink: FileSink,
  options: DownloadOptions,
): Promise<{ bytes: number }> {
  const transferError = (message: string, cause?: Error) =>
    new RemoteCommandError(
      `${host}: ${remotePath}: ${message}`,
      { kind: 'transfer', host, command: `sftp read ${remotePath}` },
      cause,
    );

  const handle = await new Promise<Buffer>((resolve, reject) =>
    sftp.open(remotePath, 'r', (err, h) => (err ? reject(transferError('cannot open', err)) : resolve(h))),
  );
  try {
    const size = await new Promise<number>((resolve, reject) =>
      sftp.fstat(handle, (err, stats) => (err ? reject(transferError('cannot stat', err)) : resolve(stats.size))),
    );
    if (options.expectedSize !== undefined && size !== options.expectedSize) {
      throw transferError(`size changed since it was listed (${options.expectedSize} -> ${size} bytes)`);
    }
    const start = options.startOffset ?? 0;
    if (start > size) throw transferError(`resume offset ${start} is past the end (${size} bytes)`);
    await pipelinedCopy(sftp, handle, sink, start, size, options, transferError);
    return { bytes: size - start };
  } finally {
    sftp.close(handle, () => undefined);
  }
}

function pipelinedCopy(
  sftp: SFTPWrapper,
  handle: Buffer,
  sink: FileSink,
  start: number,
  size: number,
  options: DownloadOptions,
  transferError: (message: string, cause?: Error) => RemoteCommandError,
): Promise<void> {
  const window = options.parallelReads * options.chunkBytes;
  const arrived = new Map<number, Buffer>();
  // Read buffers are recycled once written: at hundreds of MB/s, fresh 255 KiB buffers keep the GC busy.
  const pool: Buffer[] = [];
  const take = (length: number) => (length === options.chunkBytes && pool.pop()) || Buffer.allocUnsafe(length);
  let nextRead = start;
  /** Handed to the sink up to here; `written` trails it until the sink confirms. */
  let handedOver = start;
  let written = start;
  let settled = false;
  let waitingForBudget = false;
  const cap = new RateCap(options.maxBytesPerSecond);
  /** Milliseconds until the cap allows reading up to `offset`; 0 when it allows it now. */
  const budgetWait = (offset: number) => cap.waitFor(offset - start);

  return new Promise<void>((resolve, reject) => {
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      options.signal?.removeEventListener('abort', onAbort);
      reject(err);
    };
    const onAbort = () => fail(transferError('cancelled'));
    options.signal?.addEventListener('abort', onAbort, { once: true });

    const readAt = (offset: number, length: number) => {
      const buffer = take(length);
      sftp.read(handle, buffer, 0, length, offset, (err, bytesRead) => {
        if (settled) return;
        if (err) return fail(transferError(`read at ${offset} failed`, err));
        if (bytesRead === 0)
          return fail(transferError(`file ended at ${offset}, expected ${size} bytes (truncated while copying?)`));
        // The server may answer with fewer bytes than asked: ask again for the rest.
        if (bytesRead < length) readAt(offset + bytesRead, length - bytesRead);
        arrived.set(offset, bytesRead < length ? buffer.subarray(0, bytesRead) : buffer);
        drain();
      });
    };

    const inOneWrite = options.inOneWrite ?? ((send: () => void) => send());
    // Requests go out in bursts of a few: fewer, fuller packets on the wire and fewer system calls.
    const burst = Math.min(4, Math.max(1, Math.floor(options.parallelReads / 8))) * options.chunkBytes;
    const fillWindow = () => {
      if (nextRead < size && nextRead - written > window - burst) return;
      inOneWrite(fillWindowNow);
    };
    const fillWindowNow = () => {
      while (!settled && !waitingForBudget && nextRead < size && nextRead - written < window) {
        const length = Math.min(options.chunkBytes, size - nextRead);
        const wait = budgetWait(nextRead + length);
        if (wait > 0) {
          waitingForBudget = true;
          setTimeout(() => {
            waitingForBudget = false;
            fillWindow();
          }, wait);
          return;
        }
        readAt(nextRead, length);
        nextRead += length;
      }
    };

    // What is next in file order goes to the sink in batches of about a megabyte (one message, one
    // writev); the window counts it as in flight until the sink is done, so memory stays bounded.
    const batchBytes = Math.min(1 << 20, window / 2);
    let batch: Buffer[] = [];
    let batchFrom = start;
    const drain = () => {
      for (let piece = arrived.get(handedOver); piece && !settled; piece = arrived.get(handedOver)) {
        arrived.delete(handedOver);
        batch.push(piece);
        handedOver += piece.length;
      }
      if (batch.length === 0 || (handedOver - batchFrom < batchBytes && handedOver < size)) return;
      const [pieces, from, length] = [batch, batchFrom, handedOver - batchFrom];
      batch = [];
      batchFrom = handedOver;
      sink.write(pieces, from).then((reusable) => {
        if (settled) return;
        written += length;
        pool.push(...reusable.filter((b) => b.length === options.chunkBytes));
        options.onProgress?.(written, size);
        if (written < size) return fillWindow();
        settled = true;
        options.signal?.removeEventListener('abort', onAbort);
        resolve();
      }, fail);
    };

    if (start >= size) {
      settled = true;
      resolve();
      return;
    }
    fillWindow();
  });
}
