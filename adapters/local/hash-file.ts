import type { Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';

/** Feeds the file's first `length` bytes (all of it when omitted) to `hash`, a few megabytes at a time. */
export async function hashFile(hash: Hash, path: string, length?: number): Promise<Hash> {
  if (length === 0) return hash;
  const range = length === undefined ? {} : { start: 0, end: length - 1 };
  for await (const chunk of createReadStream(path, { ...range, highWaterMark: 4 << 20 })) hash.update(chunk as Buffer);
  return hash;
}
