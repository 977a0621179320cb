/**
 * Worker-thread side of BackgroundFileSink: writes each piece at its offset and feeds the running
 * SHA-256, so the main thread only decrypts and parses. Pieces arrive and are acknowledged in order.
 */
import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import type { SinkMessage, SinkReply } from './file-sink';
import { dataRuns } from './sparse-runs';

const { fd, hashing } = workerData as { fd: number; hashing: boolean };
const hash = hashing ? createHash('sha256') : undefined;
const port = parentPort!;

function handle(message: SinkMessage): SinkReply {
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
      for (const run of dataRuns(pieces, message.position)) {
        let position = run.position;
        for (const piece of run.buffers) {
          for (let done = 0; done < piece.length;) {
            done += writeSync(fd, piece, done, piece.length - done, position + done);
          }
          position += piece.length;
        }
      }
      for (const piece of pieces) hash?.update(piece);
      return { kind: 'done', buffers: message.buffers };
    }
    case 'digest':
      return { kind: 'digest', sha256: hash?.digest('hex') };
  }
}

port.on('message', (message: SinkMessage) => {
  let reply: SinkReply;
  try {
    reply = handle(message);
  } catch (err) {
    const { message: text, code } = err as NodeJS.ErrnoException;
    reply = { kind: 'error', message: text, code };
  }
  // Written buffers go back (transferred) for the caller to fill again.
  port.postMessage(reply, reply.kind === 'done' ? (reply.buffers ?? []) : []);
});
