import { createHash, randomBytes } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';

/** A disk image of `mb` MiB for the benches: all random, or mostly zero (one random MiB in ten); its SHA-256. */
export function writeImage(path: string, kind: 'random' | 'mostly-zero', mb: number): string {
  const hash = createHash('sha256');
  const fd = openSync(path, 'w');
  const zero = Buffer.alloc(1 << 20);
  for (let i = 0; i < mb; i++) {
    const block = kind === 'random' || i % 10 === 0 ? randomBytes(1 << 20) : zero;
    writeSync(fd, block);
    hash.update(block);
  }
  closeSync(fd);
  return hash.digest('hex');
}
