import { createHash, type Hash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { hashFile } from '../local/hash-file';
import { dataRuns, writeRun } from '../local/sparse-runs';

/**
 * Where a download's bytes go, in file order: written at their offset (zero blocks as holes, see
 * dataRuns) and fed to the running SHA-256.
 * Memory stays bounded because the caller reuses a buffer only once the sink has handed it back.
 */
export interface FileSink {
  /** Hashes the first `length` bytes already in the file at `path` (a resumed copy keeps them). */
  seed(path: string, length: number): Promise<void>;
  /**
   * Writes `pieces`, contiguous from `position`, and hashes them; calls come in file order. The pieces
   * belong to the sink from then on (a background sink moves their memory to its thread); it resolves
   * with buffers the caller may fill again.
   */
  write(pieces: Buffer[], position: number): Promise<Buffer[]>;
  /** Hex SHA-256 of the seed and every piece; undefined when not hashing. */
  digest(): Promise<string | undefined>;
  /** Waits for writes in flight and releases the sink; the file handle stays open. */
  close(): Promise<void>;
}

/** Files at least this large get a background sink: the hash and the writes leave the event loop. */
export const BACKGROUND_SINK_BYTES = 32 << 20;

/** Writes and hashes on the event loop's thread: no start-up cost, right for small files. */
export class InlineFileSink implements FileSink {
  private readonly hash?: Hash;

  constructor(
    private readonly file: FileHandle,
    hashing: boolean,
  ) {
    this.hash = hashing ? createHash('sha256') : undefined;
  }

  async seed(path: string, length: number): Promise<void> {
    if (this.hash) await hashFile(this.hash, path, length);
  }

  async write(pieces: Buffer[], position: number): Promise<Buffer[]> {
    for (const piece of pieces) this.hash?.update(piece); // now: calls come in file order, writes may overlap
    for (const run of dataRuns(pieces, position)) {
      await writeRun(run, async (buffers, at) => (await this.file.writev(buffers, at)).bytesWritten);
    }
    return pieces;
  }

  async digest(): Promise<string | undefined> {
    return this.hash?.digest('hex');
  }

  async close(): Promise<void> {}
}

export type SinkMessage =
  | { kind: 'seed'; path: string; length: number }
  | { kind: 'write'; buffers: ArrayBuffer[]; position: number }
  | { kind: 'digest' };
export type SinkReply =
  | { kind: 'done'; buffers?: ArrayBuffer[] }
  | { kind: 'digest'; sha256?: string }
  | { kind: 'error'; message: string; code?: string };

/**
 * Hashes in a worker thread, which hands the writes to libuv's pool meanwhile: at hundreds of MB/s SHA-256
 * alone keeps a core a third busy, time the event loop needs for decrypting. Whole buffers move between the
 * threads (transferred, not copied) and come back for reuse.
 */
export class BackgroundFileSink implements FileSink {
  private readonly worker: Worker;
  private readonly waiting: {
    resolve: (reply: SinkReply) => void;
    reject: (err: Error) => void;
    settled: Promise<unknown>;
  }[] = [];
  private broken?: Error;

  constructor(file: FileHandle, hashing: boolean) {
    this.worker = new Worker(join(__dirname, 'file-sink-thread.js'), { workerData: { fd: file.fd, hashing } });
    this.worker.on('message', (reply: SinkReply) => this.waiting.shift()?.resolve(reply));
    this.worker.on('error', (err) => this.breakWith(err));
    this.worker.on('exit', () => this.breakWith(new Error('the file sink thread stopped')));
  }

  async seed(path: string, length: number): Promise<void> {
    if (length > 0) await this.send({ kind: 'seed', path, length });
  }

  async write(pieces: Buffer[], position: number): Promise<Buffer[]> {
    const whole = (p: Buffer) => p.byteOffset === 0 && p.buffer.byteLength === p.length && p.length > 0;
    // A piece that shares its memory with others (a slice, Node's small-buffer pool) goes as a copy.
    const buffers = pieces.map((p) => (whole(p) ? p.buffer : new Uint8Array(p).buffer) as ArrayBuffer);
    const reply = await this.send({ kind: 'write', buffers, position }, buffers);
    return reply.kind === 'done' ? (reply.buffers ?? []).map((b) => Buffer.from(b)) : [];
  }

  async digest(): Promise<string | undefined> {
    const reply = await this.send({ kind: 'digest' });
    return reply.kind === 'digest' ? reply.sha256 : undefined;
  }

  async close(): Promise<void> {
    // Until every queued write is answered the thread may still use the descriptor; the caller closes it next.
    while (this.waiting.length > 0 && !this.broken) await this.waiting.at(-1)!.settled;
    this.breakWith(new Error('the file sink is closed'));
    await this.worker.terminate();
  }

  private send(message: SinkMessage, transfer: ArrayBuffer[] = []): Promise<SinkReply> {
    if (this.broken) return Promise.reject(this.broken);
    let entry!: (typeof this.waiting)[number];
    const answer = new Promise<SinkReply>((resolve, reject) => {
      entry = {
        resolve: (reply) => {
          if (reply.kind !== 'error') return resolve(reply);
          const err: NodeJS.ErrnoException = new Error(reply.message);
          if (reply.code) err.code = reply.code;
          reject(err);
        },
        reject,
        settled: Promise.resolve(),
      };
    });
    entry.settled = answer.catch(() => undefined);
    this.waiting.push(entry);
    this.worker.postMessage(message, transfer);
    return answer;
  }

  private breakWith(err: Error): void {
    this.broken ??= err;
    for (const w of this.waiting.splice(0)) w.reject(err);
  }
}
