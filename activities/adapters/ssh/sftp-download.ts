import type { Hash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import type { SFTPWrapper } from 'ssh2';
import { RemoteCommandError } from './remote-command-error';

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
  /** Fed every byte in file order, including none of the skipped prefix. */
  hash?: Hash;
  onProgress?: (bytesDone: number, bytesTotal: number) => void;
  signal?: AbortSignal;
}

/**
 * Copies a remote file into an open local file with pipelined SFTP reads written in order.
 * ssh2's fastGet defaults (64 x 32 KiB) are several times slower than OpenSSH; this keeps a deep
 * queue of near-maximal reads and never holds more than the window in memory.
 */
export async function sftpDownload(
  sftp: SFTPWrapper,
  host: string,
  remotePath: string,
  local: FileHandle,
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
    await pipelinedCopy(sftp, handle, local, start, size, options, transferError);
    return { bytes: size - start };
  } finally {
    sftp.close(handle, () => undefined);
  }
}

function pipelinedCopy(
  sftp: SFTPWrapper,
  handle: Buffer,
  local: FileHandle,
  start: number,
  size: number,
  options: DownloadOptions,
  transferError: (message: string, cause?: Error) => RemoteCommandError,
): Promise<void> {
  const window = options.parallelReads * options.chunkBytes;
  const arrived = new Map<number, { piece: Buffer; owner: Buffer }>();
  // Read buffers are recycled once written: at hundreds of MB/s, fresh 255 KiB buffers keep the GC busy.
  const pool: Buffer[] = [];
  const take = (length: number) => (length === options.chunkBytes && pool.pop()) || Buffer.allocUnsafe(length);
  let nextRead = start;
  let written = start;
  let writing = false;
  let settled = false;
  let waitingForBudget = false;
  const startedAt = Date.now();
  const limit = options.maxBytesPerSecond ?? 0;
  /** Milliseconds until the cap allows reading up to `offset`; 0 when it allows it now. */
  const budgetWait = (offset: number) =>
    limit > 0 ? Math.max(0, ((offset - start) / limit) * 1000 - (Date.now() - startedAt)) : 0;

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
        arrived.set(offset, { piece: bytesRead < length ? buffer.subarray(0, bytesRead) : buffer, owner: buffer });
        void drain();
      });
    };

    const fillWindow = () => {
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

    const drain = async () => {
      if (writing || settled) return;
      writing = true;
      try {
        for (let next = arrived.get(written); next && !settled; next = arrived.get(written)) {
          arrived.delete(written);
          const { piece, owner } = next;
          await local.write(piece, 0, piece.length, written);
          options.hash?.update(piece);
          written += piece.length;
          if (owner.length === options.chunkBytes) pool.push(owner);
          options.onProgress?.(written, size);
        }
      } catch (err) {
        return fail(err as Error);
      } finally {
        writing = false;
      }
      if (written >= size) {
        if (!settled) {
          settled = true;
          options.signal?.removeEventListener('abort', onAbort);
          resolve();
        }
      } else {
        fillWindow();
        if (arrived.has(written)) void drain();
      }
    };

    if (start >= size) {
      settled = true;
      resolve();
      return;
    }
    fillWindow();
  });
}
