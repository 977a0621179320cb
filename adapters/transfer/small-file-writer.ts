import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { StoreFileMode } from '../local/file-mode';

export type WriterMessage = { path: string; data: ArrayBuffer; mode: StoreFileMode; mtime: number; hashing: boolean };
export type WriterReply = { kind: 'done'; sha256?: string } | { kind: 'error'; message: string; code?: string };

/** Bytes handed to the threads and not yet written: how far reading may run ahead of the disk. */
const MAX_BYTES_IN_FLIGHT = 32 << 20;
/**
 * Files handed to the threads and not yet written: each costs more than its bytes (a buffer of its own, a
 * message, a promise), and 32 MiB of 1 KiB files would be 32,000 of them queued.
 */
const MAX_FILES_IN_FLIGHT = 1024;

interface Queued {
  size: number;
  resolve: (reply: WriterReply) => void;
  answered: Promise<WriterReply>;
}

/** One thread writing whole files in the order given. */
class Lane {
  readonly queue: Queued[] = [];
  private readonly worker = new Worker(join(__dirname, 'small-file-writer-thread.js'));

  constructor(onAnswered: (size: number) => void, onBroken: (err: Error) => void) {
    this.worker.on('message', (reply: WriterReply) => {
      const next = this.queue.shift();
      if (!next) return;
      onAnswered(next.size);
      next.resolve(reply);
    });
    this.worker.on('error', onBroken);
    this.worker.on('exit', () => onBroken(new Error('a file writer thread stopped')));
  }

  send(message: WriterMessage, entry: Queued): void {
    this.queue.push(entry);
    this.worker.postMessage(message, [message.data]);
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
    // A copy in memory of its own (never Node's shared small-buffer pool), moved to the thread.
    const data = Buffer.allocUnsafeSlow(pieces.reduce((sum, p) => sum + p.length, 0));
    pieces.reduce((at, p) => at + p.copy(data, at), 0);
    let resolve!: (reply: WriterReply) => void;
    const answered = new Promise<WriterReply>((r) => (resolve = r));
    this.bytesInFlight += data.length;
    this.lanes[lane]!.send(
      { path, data: data.buffer as ArrayBuffer, ...file },
      { size: data.length, resolve, answered },
    );
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
    for (const lane of this.lanes)
      for (const queued of lane.queue.splice(0)) queued.resolve({ kind: 'error', message: err.message });
  }
}
