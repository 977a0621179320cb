import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';

/** A pass-through stream that hashes (SHA-256) and counts what goes through it. */
export interface HashingTap {
  stream: Transform;
  /** Bytes that went through so far. */
  bytes(): number;
  /** The SHA-256 of everything that went through (call once, at the end). */
  sha256(): string;
}

export function hashingTap(): HashingTap {
  const hash = createHash('sha256');
  let bytes = 0;
  const stream = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      bytes += chunk.length;
      done(null, chunk);
    },
  });
  return { stream, bytes: () => bytes, sha256: () => hash.digest('hex') };
}
