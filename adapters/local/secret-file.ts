import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';

export class SecretFileExposedError extends Error {
  override name = 'SecretFileExposedError';
}

/** Refuses a secret file whose mode lets others read or write it (see readSecretFile). */
export function refuseExposed(mode: number, path: string, what: string): void {
  if (!(mode & 0o077)) return;
  const octal = (mode & 0o777).toString(8).padStart(4, '0');
  throw new SecretFileExposedError(
    `${what} ${path} is accessible by others (mode ${octal}): it is refused, as OpenSSH refuses such keys. ` +
      `Fix: chmod 600 ${path} (and make sure it is owned by the user the worker runs as)`,
  );
}

/**
 * Reads a private key or password file, refusing one that other users may read or write, as OpenSSH
 * refuses such a key: a secret readable by others is no longer a secret, and using it hides the problem.
 */
export async function readSecretFile(path: string, what: string): Promise<Buffer> {
  const file = await open(path, 'r');
  try {
    refuseExposed((await file.stat()).mode, path, what);
    return await file.readFile();
  } finally {
    await file.close();
  }
}

/** readSecretFile for the few places that must stay synchronous (the Temporal connection settings). */
export function readSecretFileSync(path: string, what: string): Buffer {
  const { data, mode } = readFileAndModeSync(path);
  refuseExposed(mode, path, what);
  return data;
}

/** A file's content and the mode it had when read (one open file: no swap between the check and the read). */
export function readFileAndModeSync(path: string): { data: Buffer; mode: number } {
  const fd = openSync(path, 'r');
  try {
    return { mode: fstatSync(fd).mode, data: readFileSync(fd) };
  } finally {
    closeSync(fd);
  }
}
