/** Worker-thread side of SmallFileWriter: a batch of files per message, written and answered in order. */
import { createHash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import type { WriterMessage, WriterReplies, WriterReply } from './small-file-writer';
import { writeFileNow } from '../local/write-file-now';

const port = parentPort!;

port.on('message', ({ data, files }: WriterMessage) => {
  const replies: WriterReplies = [];
  let at = 0;
  for (const { path, length, mode, mtime, hashing } of files) {
    let reply: WriterReply;
    try {
      const bytes = Buffer.from(data, at, length);
      writeFileNow(path, [bytes], mode, mtime);
      reply = { kind: 'done', sha256: hashing ? createHash('sha256').update(bytes).digest('hex') : undefined };
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      reply = { kind: 'error', message: e.message, code: e.code };
    }
    at += length;
    replies.push(reply);
  }
  port.postMessage(replies);
});
