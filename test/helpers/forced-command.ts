import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SandboxSshHost } from '../../scripts/sandbox/sshd-host';

/**
 * Makes the sandbox sshd run `command` (authorized_keys `command=`) whatever the client asks: a host that
 * accepts every command and never answers (`sleep`), or one that answers without end (`yes`). No argument
 * puts the key back as it was.
 */
export function forceCommand(host: SandboxSshHost, command?: string): void {
  const key = readFileSync(`${host.config.privateKeyFile}.pub`, 'utf8').trim();
  const option = command === undefined ? '' : `command="${command.replace(/"/g, '\\"')}" `;
  writeFileSync(join(host.dir, 'authorized_keys', host.config.user), `${option}${key}\n`);
}
