import { readFile } from 'node:fs/promises';
import type { HostConfig } from '../../config/schema';
import { readSecretFile, SecretFileExposedError } from '../local/secret-file';
import type { RemoteCommandError } from './remote-command-error';

/**
 * The host's private key (refused when others can read it) and known_hosts text, read before any connection
 * (ssh2's and OpenSSH's alike); `fail` makes the error of each refusal.
 */
export async function readHostFiles(
  host: HostConfig,
  fail: (kind: 'auth' | 'host-key', message: string) => RemoteCommandError,
): Promise<{ privateKey: Buffer; knownHostsText: string }> {
  let privateKey: Buffer;
  try {
    privateKey = await readSecretFile(host.privateKeyFile, 'private key file');
  } catch (err) {
    if (err instanceof SecretFileExposedError) throw fail('auth', err.message);
    throw fail('auth', `cannot read private key file ${host.privateKeyFile}: ${(err as Error).message}`);
  }
  try {
    return { privateKey, knownHostsText: await readFile(host.knownHostsFile, 'utf8') };
  } catch (err) {
    throw fail('host-key', `cannot read known_hosts file ${host.knownHostsFile}: ${(err as Error).message}`);
  }
}
