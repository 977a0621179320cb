/** Worker-thread side of SmallFileWriter: one file per message, written and answered in order. */
import { createHash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import type { WriterMessage, WriterReply } from './small-file-writer';
import { writeFileNow } from '../local/write-file-now';

const port = parentPort!;

port.on('message', ({ path, data, mode, mtime, hashing }: WriterMessage) => {
  let reply: WriterReply;
  try {
    const bytes = Buffer.from(data);
    writeFileNow(path, [bytes], mode, mtime);
    reply = { kind: 'done', sha256: hashing ? createHash('sha256').update(bytes).digest('hex') : undefined };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    reply = { kind: 'error', message: e.message, code: e.code };
  }
  port.postMessage(reply);
});
