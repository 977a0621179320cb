import { closeSync, fchmodSync, fchownSync, fstatSync, futimesSync, openSync, writevSync } from 'node:fs';
import type { StoreFileMode } from './file-mode';

/**
 * Writes a whole small file with synchronous calls, with its mode, group and mtime: it runs in a writer
 * thread of its own (SmallFileWriter), where one call after the other costs less than four trips through
 * libuv's thread pool (open, write, futimes, close). Not flushed: the caller does that for many files at once.
 */
export function writeFileNow(path: string, data: readonly Buffer[], mode: StoreFileMode, mtime: number): void {
  const fd = openSync(path, 'w', mode.fileMode);
  try {
    // Created with the mode, unless the umask took bits away; a group is set explicitly.
    if ((fstatSync(fd).mode & 0o777) !== mode.fileMode) fchmodSync(fd, mode.fileMode);
    if (mode.gid !== undefined) fchownSync(fd, -1, mode.gid);
    const pending = [...data];
    while (pending.length > 0) {
      let written = writevSync(fd, pending);
      // A short write: drop what went, keep the rest.
      while (pending.length > 0 && written >= pending[0]!.length) written -= pending.shift()!.length;
      if (written > 0) pending[0] = pending[0]!.subarray(written);
    }
    futimesSync(fd, mtime, mtime);
  } finally {
    closeSync(fd);
  }
}
