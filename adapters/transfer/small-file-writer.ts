import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { StoreFileMode } from '../local/file-mode';

/** One file of a batch: its bytes are `length` bytes of the batch's data, after those of the files before it. */
export type WriterFile = { path: string; length: number; mode: StoreFileMode; mtime: number; hashing: boolean };
/** Files handed to a thread at once, their bytes in one buffer (moved, not copied, to the thread). */
export type WriterMessage = { data: ArrayBuffer; files: WriterFile[] };
export type WriterReply = { kind: 'done'; sha256?: string } | { kind: 'error'; message: string; code?: string };
/** The replies to a batch, one per file, in its order. */
export type WriterReplies = WriterReply[];

/** Bytes handed to the threads and not yet written: how far reading may run ahead of the disk. */
const MAX_BYTES_IN_FLIGHT = 32 << 20;
/**
 * Files handed to the threads and not yet written: each costs more than its bytes (its promises, its entry in
 * a batch), and 32 MiB of 1 KiB files would be 32,000 of them queued. Batched, 256 keep four lanes busy as
 * well as 1,024 did; what waits in flight outlives the young generation and is garbage of the old one
 * (measured, 100,000 x 1 KiB on /dev/shm: peak RSS 262-297 MiB at 256, 336-362 MiB at 1,024, same time).
 */
const MAX_FILES_IN_FLIGHT = 256;
/**
 * Bytes gathered into one message to a thread: the files queued on a lane in one turn of the event loop
 * (those of a chunk of the stream) travel together, in one buffer: a message, an allocation and a reply per
 * batch, not per file (at 1 KiB a file, per-file messages cost more CPU than the writes, and 100,000 buffers
 * of 1 KiB, freed only by the garbage collector, held more memory than the day's listing).
 */
const BATCH_BYTES = 256 << 10;
/** Most files in one batch. */
const BATCH_FILES = 256;

interface Queued {
  size: number;
  resolve: (reply: WriterReply) => void;
  answered: Promise<WriterReply>;
}

/** Files gathered for one message: their bytes (as they arrived) are copied into one buffer when it is sent. */
interface Batch {
  pieces: Buffer[];
  bytes: number;
  files: WriterFile[];
}

/** One thread writing whole files in the order given. */
class Lane {
  /** Every file queued and not answered yet, in order (those of the batch being gathered too). */
  readonly queue: Queued[] = [];
  private readonly worker = new Worker(join(__dirname, 'small-file-writer-thread.js'));
  private batch?: Batch;

  constructor(onAnswered: (size: number) => void, onBroken: (err: Error) => void) {
    this.worker.on('message', (replies: WriterReplies) => {
      for (const reply of replies) {
        const next = this.queue.shift();
        if (!next) return;
        onAnswered(next.size);
        next.resolve(reply);
      }
    });
    this.worker.on('error', onBroken);
    this.worker.on('exit', () => onBroken(new Error('a file writer thread stopped')));
  }

  /** Adds a file to the batch being gathered, which goes to the thread at the end of this turn (or once full). */
  add(pieces: readonly Buffer[], file: Omit<WriterFile, 'length'>, entry: Queued): void {
    const length = pieces.reduce((sum, p) => sum + p.length, 0);
    if (this.batch && (this.batch.bytes + length > BATCH_BYTES || this.batch.files.length >= BATCH_FILES)) this.send();
    if (!this.batch) {
      this.batch = { pieces: [], bytes: 0, files: [] };
      setImmediate(() => this.send());
    }
    this.batch.pieces.push(...pieces);
    this.batch.bytes += length;
    this.batch.files.push({ ...file, length });
    this.queue.push(entry);
  }

  /** Hands the batch gathered so far to the thread. */
  send(): void {
    const batch = this.batch;
    if (!batch) return;
    this.batch = undefined;
    // A buffer of its own (never Node's shared small-buffer pool), moved to the thread.
    const data = Buffer.allocUnsafeSlow(batch.bytes);
    batch.pieces.reduce((at, p) => at + p.copy(data, at), 0);
    const message: WriterMessage = { data: data.buffer as ArrayBuffer, files: batch.files };
    this.worker.postMessage(message, [message.data]);
  }

  /** Forgets the batch being gathered (its files are answered by the caller). */
  drop(): void {
    this.batch = undefined;
  }

  terminate(): Promise<number> {
    return this.worker.terminate();
  }
}

/**
 * Writes whole small files (not flushed) in worker threads, and hashes them there. Creating a file can take
 * most of a millisecond on ext4: on the event loop that would stall decrypting the stream as long; in lanes of
 * their own, the stream and the writes overlap (as ssh and rsync's receiver, two processes, do), and lanes
 * writing into folders of their own create files side by side (see DayStaging).
 */
export class SmallFileWriter {
  private readonly lanes: Lane[];
  private bytesInFlight = 0;
  private broken?: Error;

  constructor(lanes: number) {
    this.lanes = Array.from(
      { length: lanes },
      () =>
        new Lane(
          (size) => (this.bytesInFlight -= size),
          (err) => this.breakWith(err),
        ),
    );
  }

  get laneCount(): number {
    return this.lanes.length;
  }

  /**
   * Queues a file on a lane, waiting first while too many bytes are queued (a fast stream must not fill
   * memory ahead of a slow disk). `written` then settles with its SHA-256 (when hashing) once it is written.
   */
  async write(
    lane: number,
    path: string,
    pieces: readonly Buffer[],
    file: { mode: StoreFileMode; mtime: number; hashing: boolean },
  ): Promise<{ written: Promise<string | undefined> }> {
    while ((this.bytesInFlight > MAX_BYTES_IN_FLIGHT || this.filesInFlight() >= MAX_FILES_IN_FLIGHT) && !this.broken)
      await this.oldestAnswer();
    if (this.broken) throw this.broken;
    let resolve!: (reply: WriterReply) => void;
    const answered = new Promise<WriterReply>((r) => (resolve = r));
    const size = pieces.reduce((sum, p) => sum + p.length, 0);
    this.bytesInFlight += size;
    this.lanes[lane]!.add(pieces, { path, ...file }, { size, resolve, answered });
    const written = answered.then((reply) => {
      if (reply.kind === 'done') return reply.sha256;
      const err: NodeJS.ErrnoException = new Error(reply.message);
      if (reply.code) err.code = reply.code;
      throw err;
    });
    return { written };
  }

  /** Waits for every queued file, then ends the threads. */
  async close(): Promise<void> {
    for (const lane of this.lanes) lane.send();
    for (const lane of this.lanes) while (lane.queue.length > 0 && !this.broken) await lane.queue.at(-1)!.answered;
    this.breakWith(new Error('the file writer is closed'));
    await Promise.all(this.lanes.map((lane) => lane.terminate()));
  }

  private filesInFlight(): number {
    return this.lanes.reduce((sum, lane) => sum + lane.queue.length, 0);
  }

  private oldestAnswer(): Promise<unknown> {
    return Promise.race(this.lanes.flatMap((lane) => (lane.queue[0] ? [lane.queue[0].answered] : [])));
  }

  private breakWith(err: Error): void {
    this.broken ??= err;
    for (const lane of this.lanes) {
      lane.drop();
      for (const queued of lane.queue.splice(0)) queued.resolve({ kind: 'error', message: err.message });
    }
  }
}
