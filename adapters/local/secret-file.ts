import { open } from 'node:fs/promises';

export class SecretFileExposedError extends Error {
  override name = 'SecretFileExposedError';
}

/**
 * Reads a private key or password file, refusing one that other users may read or write, as OpenSSH
 * refuses such a key: a secret readable by others is no longer a secret, and using it hides the problem.
 */
export async function readSecretFile(path: string, what: string): Promise<Buffer> {
  const file = await open(path, 'r');
  try {
    const mode = (await file.stat()).mode & 0o777;
    if (mode & 0o077) {
      const octal = mode.toString(8).padStart(4, '0');
      throw new SecretFileExposedError(
        `${what} ${path} is accessible by others (mode ${octal}): it is refused, as OpenSSH refuses such keys. ` +
          `Fix: chmod 600 ${path} (and make sure it is owned by the user the worker runs as)`,
      );
    }
    return await file.readFile();
  } finally {
    await file.close();
  }
}
