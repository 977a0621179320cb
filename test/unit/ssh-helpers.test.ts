import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { keysForHost, knownHostsName } from '../../adapters/ssh/known-hosts';
import { isRetryable, RemoteCommandError } from '../../adapters/ssh/remote-command-error';
import { commandLine, quote } from '../../adapters/ssh/shell-quote';

describe('shell quoting', () => {
  const words = ["it's", 'a b', '$(id)', '`id`', '"x"', 'new\nline', '-rf', '\\', ';', '*', 'ü'];
  it('makes /bin/sh see exactly the original words', () => {
    const out = execFileSync('/bin/sh', ['-c', `printf '%s\\0' ${words.map(quote).join(' ')}`]);
    assert.deepEqual(out.toString('utf8').split('\0').slice(0, -1), words);
  });
  it('refuses NUL and empty commands', () => {
    assert.throws(() => quote('a\0b'), /NUL/);
    assert.throws(() => commandLine([]), /empty/);
  });
});

describe('known_hosts', () => {
  const key = randomBytes(51).toString('base64');
  const other = randomBytes(51).toString('base64');
  it('names non-default ports in brackets', () => {
    assert.equal(knownHostsName('10.0.0.1', 22), '10.0.0.1');
    assert.equal(knownHostsName('127.0.0.2', 2222), '[127.0.0.2]:2222');
  });
  it('matches plain, wildcard, negated and hashed entries', () => {
    const salt = randomBytes(20);
    const hashed = `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update('[h]:2022').digest('base64')}`;
    const text = [
      '# comment',
      `h1,h2 ssh-ed25519 ${key}`,
      `*.lab,!bad.lab ssh-ed25519 ${other}`,
      `${hashed} ssh-ed25519 ${key}`,
      `@cert-authority * ssh-ed25519 ${other}`,
      `@revoked h2 ssh-ed25519 ${other}`,
    ].join('\n');
    assert.deepEqual(
      keysForHost(text, 'h1').map((k) => k.key.toString('base64')),
      [key],
    );
    assert.deepEqual(
      keysForHost(text, 'x.lab').map((k) => k.key.toString('base64')),
      [other],
    );
    assert.deepEqual(keysForHost(text, 'bad.lab'), []);
    assert.deepEqual(
      keysForHost(text, '[h]:2022').map((k) => k.key.toString('base64')),
      [key],
    );
    assert.deepEqual(
      keysForHost(text, 'h2').map((k) => k.revoked),
      [false, true],
    );
    assert.deepEqual(keysForHost(text, 'nobody'), []);
  });
});

describe('remote failure classification', () => {
  it('retries link problems and never retries trust problems', () => {
    assert.equal(isRetryable({ kind: 'connect', host: 'h' }), true);
    assert.equal(isRetryable({ kind: 'transfer', host: 'h' }), true);
    assert.equal(isRetryable({ kind: 'host-key', host: 'h' }), false);
    assert.equal(isRetryable({ kind: 'auth', host: 'h' }), false);
    assert.equal(isRetryable({ kind: 'unsafe-remote-data', host: 'h' }), false);
  });
  it('decides for commands by exit code and stderr', () => {
    assert.equal(isRetryable({ kind: 'command', host: 'h', exitCode: 127 }), false);
    assert.equal(isRetryable({ kind: 'command', host: 'h', exitCode: 1, stderr: 'x: Permission denied' }), false);
    assert.equal(
      isRetryable({ kind: 'command', host: 'h', exitCode: 1, stderr: 'Resource temporarily unavailable' }),
      true,
    );
    assert.equal(isRetryable({ kind: 'command', host: 'h', exitCode: null, signal: 'KILL' }), true);
  });
  it('carries command, exit code and trimmed stderr as a Temporal failure', () => {
    const err = new RemoteCommandError('boom', {
      kind: 'command',
      host: 'h',
      command: 'ls',
      exitCode: 2,
      stderr: 'e'.repeat(5000),
    });
    assert.equal(err.type, 'RemoteCommandError');
    assert.equal(err.nonRetryable, false);
    assert.ok((err.remote.stderr ?? '').length < 2100);
    assert.deepEqual((err.details?.[0] as { exitCode: number }).exitCode, 2);
  });
});
