import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { SHA256_FUNCTION } from '../../adapters/ssh/remote-hash';

const which = (program: string) => execFileSync('sh', ['-c', `command -v ${program}`], { encoding: 'utf8' }).trim();

describe('the remote SHA-256 function', () => {
  const data = randomBytes(3 << 20);
  const expected = createHash('sha256').update(data).digest('hex');
  const dir = mkdtempSync(join(tmpdir(), 'cb-remote-hash-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const hash = (path: string) =>
    execFileSync('/bin/sh', ['-c', `${SHA256_FUNCTION}; cb_sha256`], { input: data, env: { PATH: path } }).toString();

  it('prints the 64 hex digits of its input with OpenSSL', () => {
    assert.ok(which('openssl'), 'openssl is installed here');
    assert.equal(hash(process.env.PATH ?? ''), `${expected}\n`);
  });

  it('falls back to sha256sum where the host has no openssl', () => {
    for (const program of ['sha256sum', 'cut']) symlinkSync(which(program), join(dir, program));
    assert.equal(hash(dir), `${expected}\n`);
  });
});
