import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { RemoteCommandError } from '../../adapters/ssh/remote-command-error';
import { SshSession, withSsh } from '../../adapters/ssh/ssh-session';
import { quote } from '../../adapters/ssh/shell-quote';
import { PROJECT_ROOT } from '../../scripts/sandbox/paths';
import { startSshHost, type SandboxSshHost } from '../../scripts/sandbox/sshd-host';
import { forceCommand } from '../helpers/forced-command';

describe('SSH session against a real sshd', () => {
  let root: string;
  let host: SandboxSshHost;
  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'cluster-backup-ssh-'));
    host = await startSshHost({ dir: join(root, 'h'), address: '127.0.0.9' });
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

  it('passes every argument through the remote shell intact', async () => {
    const words = ["it's", 'a b', '$(touch /tmp/pwned-by-test)', '-n', 'new\nline'];
    const out = await withSsh('h', host.config, (ssh) => ssh.run(['printf', '%s\\0', ...words]));
    assert.deepEqual(out.toString().split('\0').slice(0, -1), words);
  });

  it('reports a failing command with exit code and stderr', async () => {
    await assert.rejects(
      withSsh('h', host.config, (ssh) => ssh.run({ shell: `echo oops >&2; exit 7` })),
      (err: unknown) =>
        err instanceof RemoteCommandError &&
        err.remote.exitCode === 7 &&
        err.remote.stderr === 'oops' &&
        !err.nonRetryable,
    );
  });

  it('refuses a host whose key differs from known_hosts, loudly and for good', async () => {
    const wrong = join(root, 'wrong_known_hosts');
    const otherKey = join(root, 'other_key');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', otherKey]);
    const pub = readFileSync(`${otherKey}.pub`, 'utf8').split(' ').slice(0, 2).join(' ');
    writeFileSync(wrong, `[${host.config.host}]:${host.config.port} ${pub}\n`);
    await assert.rejects(
      SshSession.connect('h', { ...host.config, knownHostsFile: wrong }),
      refused('host-key', /HOST KEY MISMATCH/),
    );
  });

  it('refuses a host that known_hosts does not list', async () => {
    const empty = join(root, 'empty_known_hosts');
    writeFileSync(empty, `# nothing\n[other]:22 ${host.hostPublicKey}\n`);
    await assert.rejects(
      SshSession.connect('h', { ...host.config, knownHostsFile: empty }),
      refused('host-key', /no host key/),
    );
  });

  it('reports a refused key as an authentication failure', async () => {
    const stranger = join(root, 'stranger_key');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', stranger]);
    await assert.rejects(
      SshSession.connect('h', { ...host.config, privateKeyFile: stranger }),
      refused('auth', /refused/),
    );
  });

  it('reports a closed port as a retryable connect failure', async () => {
    const knownHostsFile = join(root, 'port1_known_hosts');
    writeFileSync(knownHostsFile, `[${host.config.host}]:1 ${host.hostPublicKey}\n`);
    await assert.rejects(
      SshSession.connect('h', { ...host.config, port: 1, knownHostsFile }),
      (err: unknown) =>
        err instanceof RemoteCommandError && err.remote.kind === 'connect' && err.nonRetryable === false,
    );
  });

  it('quotes words so the remote shell runs nothing they contain', async () => {
    await withSsh('h', host.config, (ssh) =>
      ssh.run(['test', '-e', `x; touch ${join(root, 'injected')}`]).catch(() => undefined),
    );
    await withSsh('h', host.config, (ssh) => ssh.run({ shell: `ls ${quote(root)}` })).then((out) =>
      assert.doesNotMatch(out.toString(), /injected/),
    );
  });
});

const RSS_LIMIT = 250 << 20;

/** Runs listing-in-child.js, sampling its RSS; a child above the limit is killed and that is the outcome. */
async function inChild(host: SandboxSshHost, dir: string, what: 'list' | 'run') {
  const hostFile = join(dir, 'host.json');
  writeFileSync(hostFile, JSON.stringify(host.config));
  const child = spawn(
    process.execPath,
    [join(PROJECT_ROOT, 'dist', 'test', 'helpers', 'listing-in-child.js'), hostFile, what],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  let peak = 0;
  const sample = setInterval(() => {
    const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1];
    peak = Math.max(peak, Number(rss ?? 0) * 1024);
    if (peak > RSS_LIMIT) child.kill('SIGKILL');
  }, 20);
  const timeout = setTimeout(() => child.kill('SIGKILL'), 60_000);
  await new Promise((resolve) => child.once('exit', resolve));
  clearInterval(sample);
  clearTimeout(timeout);
  const outcome = out
    ? (JSON.parse(out) as { ok: boolean; message?: string; type?: string; nonRetryable?: boolean })
    : undefined;
  return { outcome, peak };
}

describe('SSH session against a host whose commands send output without end', () => {
  let root: string;
  let host: SandboxSshHost;
  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'cluster-backup-ssh-endless-'));
    host = await startSshHost({ dir: join(root, 'h'), address: '127.0.1.9' });
  });
  after(async () => {
    await host.stop();
    rmSync(root, { recursive: true, force: true });
  });

  const cases = [
    { what: 'list', command: 'yes', expect: /refusing listing of \/: a field longer than 4096 bytes/ },
    {
      what: 'list',
      command: "printf '1.0\\0'; yes f_1_1_n_ | tr -d '\\n' | tr _ '\\0'",
      expect: /refusing listing of \/: more than 500000 entries/,
    },
    {
      what: 'run',
      command: 'yes',
      expect: /`'true'` sent more than 16777216 bytes of output \(the most kept\); stopped/,
    },
  ] as const;
  for (const { what, command, expect } of cases) {
    it(`${what === 'list' ? 'a listing' : 'a command'} of endless output (${command}) fails, naming host and cap, under 250 MiB`, async () => {
      forceCommand(host, command);
      const { outcome, peak } = await inChild(host, root, what);
      assert.ok(peak > 0 && peak < RSS_LIMIT, `peak RSS ${Math.round(peak / 2 ** 20)} MiB`);
      assert.ok(outcome && !outcome.ok, `outcome ${JSON.stringify(outcome)}`);
      assert.match(outcome.message ?? '', /^endless \(root@\[127\.0\.1\.9\]:\d+\): /);
      assert.match(outcome.message ?? '', expect);
      assert.equal(outcome.type, 'RemoteUnsafeRemoteDataError');
      assert.equal(outcome.nonRetryable, true);
    });
  }
});
