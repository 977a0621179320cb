import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startOpensshStream } from '../../adapters/ssh/openssh-stream';
import { RemoteCommandError } from '../../adapters/ssh/remote-command-error';
import { withSsh } from '../../adapters/ssh/ssh-session';
import { InlineFileSink } from '../../adapters/transfer/file-sink';
import { streamDownload } from '../../adapters/transfer/stream-download';
import type { HostConfig } from '../../config/schema';
import { startSshHost, type SandboxSshHost } from '../../scripts/sandbox/sshd-host';

/** What an OpenSSH bulk stream printed, once it ended. */
async function output(host: HostConfig, line: string): Promise<string> {
  const stream = await startOpensshStream('h', host, line);
  const chunks: Buffer[] = [];
  for await (const chunk of stream.stdout) chunks.push(chunk as Buffer);
  await stream.finished;
  return Buffer.concat(chunks).toString();
}

describe('bulk streams over OpenSSH`s ssh client against a real sshd', () => {
  let root: string;
  let host: SandboxSshHost;
  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'cluster-backup-openssh-'));
    host = await startSshHost({ dir: join(root, 'h'), address: '127.0.0.24' });
  });
  after(async () => {
    await host.stop();
    rmSync(root, { recursive: true, force: true });
  });

  const refused = (kind: string, pattern: RegExp) => (err: unknown) =>
    err instanceof RemoteCommandError &&
    err.remote.kind === kind &&
    err.nonRetryable === true &&
    pattern.test(err.message);
  const knownHosts = (name: string, line: string) => {
    const path = join(root, name);
    writeFileSync(path, `${line}\n`);
    return path;
  };
  const otherKey = (name: string, type: string) => {
    const path = join(root, name);
    execFileSync('ssh-keygen', ['-q', '-t', type, '-N', '', '-f', path]);
    return readFileSync(`${path}.pub`, 'utf8').split(' ').slice(0, 2).join(' ');
  };

  it('runs a command on the host whose key known_hosts lists', async () => {
    assert.equal(await output(host.config, 'printf %s ok'), 'ok');
  });

  it('refuses a host that known_hosts does not list, before starting ssh', async () => {
    const file = knownHosts('empty_known_hosts', `[other]:22 ${host.hostPublicKey}`);
    await assert.rejects(
      startOpensshStream('h', { ...host.config, knownHostsFile: file }, 'true'),
      refused('host-key', /no host key/),
    );
  });

  it('refuses a host key of a type known_hosts does not list for it (OpenSSH`s own strict check)', async () => {
    // A key is listed, so the check before ssh starts passes; the host presents an ed25519 key nobody pinned.
    const file = knownHosts('rsa_known_hosts', `[${host.config.host}]:${host.config.port} ${otherKey('rsa', 'rsa')}`);
    const stream = await startOpensshStream('h', { ...host.config, knownHostsFile: file }, 'echo ran');
    const chunks: Buffer[] = [];
    for await (const chunk of stream.stdout) chunks.push(chunk as Buffer);
    await assert.rejects(stream.finished, refused('host-key', /HOST KEY .* not verified/));
    assert.equal(Buffer.concat(chunks).length, 0, 'the command never ran');
  });

  it('refuses a host whose key differs from known_hosts, loudly and for good', async () => {
    const file = knownHosts(
      'wrong_known_hosts',
      `[${host.config.host}]:${host.config.port} ${otherKey('ed25519_other', 'ed25519')}`,
    );
    await assert.rejects(
      output({ ...host.config, knownHostsFile: file }, 'echo ran'),
      refused('host-key', /HOST KEY .* not verified/),
    );
  });

  it('refuses a private key file that others can read, before starting ssh', async () => {
    const exposed = join(root, 'exposed_key');
    copyFileSync(host.config.privateKeyFile, exposed);
    chmodSync(exposed, 0o644);
    await assert.rejects(
      startOpensshStream('h', { ...host.config, privateKeyFile: exposed }, 'true'),
      refused('auth', /accessible by others/),
    );
  });

  it('streams a file whose path is hostile to a shell, and runs nothing the path contains', async () => {
    const marker = (n: number) => join(root, `pwned-${n}`);
    const path = join(
      root,
      `it's; touch ${marker(1)}; '\n$(touch ${marker(2)})`,
      `\`touch ${marker(3)}\` -n "$HOME" * x`,
    );
    mkdirSync(dirname(path), { recursive: true });
    const content = randomBytes(3 << 20);
    writeFileSync(path, content);
    const local = join(root, 'copy');
    const file = await open(local, 'w');
    try {
      await withSsh('h', host.config, (ssh) =>
        streamDownload(ssh, path, new InlineFileSink(file, false), {
          compressed: false,
          bulkClient: 'openssh',
          expectedSize: content.length,
        }),
      );
    } finally {
      await file.close();
    }
    assert.ok(readFileSync(local).equals(content), 'the copy is the file`s own bytes');
    for (const n of [1, 2, 3]) assert.equal(existsSync(marker(n)), false, `${marker(n)} was created`);
  });
});
