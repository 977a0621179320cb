/**
 * Worker-thread side of BackgroundFileSink: writes each piece at its offset and feeds the running
 * SHA-256, so the main thread only decrypts and parses. Pieces arrive and are acknowledged in order.
 */
import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync, writev } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import type { SinkMessage, SinkReply } from './file-sink';
import { dataRuns, writeRun } from '../local/sparse-runs';

const { fd, hashing } = workerData as { fd: number; hashing: boolean };
const hash = hashing ? createHash('sha256') : undefined;
const port = parentPort!;

const writeAt = (buffers: Uint8Array[], position: number) =>
  new Promise<number>((resolve, reject) =>
    writev(fd, buffers, position, (err, bytesWritten) => (err ? reject(err) : resolve(bytesWritten))),
  );

/** Starts the writes, hashes meanwhile (the writes run in libuv's thread pool), resolves when both are done. */
async function handle(message: SinkMessage): Promise<SinkReply> {
  switch (message.kind) {
    case 'seed': {
      // The kept prefix of a resumed file is hashed here too: the hash state cannot cross threads.
      const input = openSync(message.path, 'r');
      try {
        const buffer = Buffer.allocUnsafe(1 << 20);
        for (let at = 0; at < message.length;) {
          const n = readSync(input, buffer, 0, Math.min(buffer.length, message.length - at), at);
          if (n === 0) throw new Error(`${message.path} ended at ${at}, expected ${message.length} bytes`);
          hash?.update(buffer.subarray(0, n));
          at += n;
        }
      } finally {
        closeSync(input);
      }
      return { kind: 'done' };
    }
    case 'write': {
      const pieces = message.buffers.map((b) => new Uint8Array(b));
      const written = Promise.all(dataRuns(pieces, message.position).map((run) => writeRun(run, writeAt)));
      written.catch(() => undefined); // awaited below, after hashing
      for (const piece of pieces) hash?.update(piece);
      await written;
      return { kind: 'done', buffers: message.buffers };
    }
    case 'digest':
      return { kind: 'digest', sha256: hash?.digest('hex') };
  }
}

// Messages are handled as they come (the hash sees the pieces in file order); replies leave in the same order.
let replies: Promise<void> = Promise.resolve();
port.on('message', (message: SinkMessage) => {
  const reply = handle(message).catch((err: NodeJS.ErrnoException): SinkReply => {
    return { kind: 'error', message: err.message, code: err.code };
  });
  // Written buffers go back (transferred) for the caller to fill again.
  replies = replies.then(() => reply).then((r) => port.postMessage(r, r.kind === 'done' ? (r.buffers ?? []) : []));
});
