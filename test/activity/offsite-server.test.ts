import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { resticOptions } from '../../activities/services';
import { initOffsite, offsiteEnvOf, reachable } from '../../adapters/restic/offsite';
import { Restic } from '../../adapters/restic/restic';
import { runRestic, type ResticEnv } from '../../adapters/restic/restic-process';
import { parseConfig } from '../../config/load';
import { startRcloneRest, type SandboxRcloneRest } from '../../scripts/sandbox/rclone-rest';

/** The sandbox off-site server: real `rclone serve restic --append-only` on a loopback address of its own. */
describe('sandbox off-site server (rclone serve restic --append-only)', () => {
  const root = mkdtempSync(join(tmpdir(), 'cluster-backup-offsite-server-'));
  let server: SandboxRcloneRest;
  const password = (name: string) => {
    const file = join(root, `${name}.key`);
    writeFileSync(file, `${name}-restic-password\n`, { mode: 0o600 });
    return file;
  };

  before(async () => {
    server = await startRcloneRest({ dir: join(root, 'server'), address: '127.0.0.26' });
  });
  after(async () => {
    await server?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('asks for its user and password, kept in a file of mode 0600', async () => {
    assert.ok(server.auth);
    assert.equal(statSync(server.auth.passwordFile).mode & 0o777, 0o600);
    const anonymous = await fetch(`http://${server.address}:${server.port}/far/config`, { method: 'HEAD' });
    assert.equal(anonymous.status, 401);
  });

  it('takes an off-site repository with the primary chunker parameters, refuses DELETE, refuses an exposed password file', async () => {
    const config = parseConfig(
      {
        hosts: { hv: { host: '127.0.0.1', user: 'backup', privateKeyFile: '/k', knownHostsFile: '/kh' } },
        hypervisor: { host: 'hv', imageArea: '/img' },
        store: { root: join(root, 'store'), engine: 'restic', restic: { passwordFile: password('primary') } },
        offsite: {
          far: {
            repository: `${server.url}far/`,
            passwordFile: password('far'),
            httpUser: server.auth!.user,
            httpPasswordFile: server.auth!.passwordFile,
          },
        },
      },
      'test',
      root,
    );
    const primary = new Restic(resticOptions(config));
    assert.equal(await primary.init(), 'created');
    const dest = offsiteEnvOf(config, 'far');
    assert.equal(await initOffsite(dest, resticOptions(config)), 'created');
    assert.equal(await initOffsite(dest, resticOptions(config)), 'existed');
    const chunker = async (env: ResticEnv) =>
      (JSON.parse((await runRestic(env, ['cat', 'config'])).stdout) as { chunker_polynomial: string })
        .chunker_polynomial;
    assert.equal(await chunker(dest), await chunker(resticOptions(config)));

    const [user, pass] = [server.auth!.user, (await readFile(server.auth!.passwordFile, 'utf8')).trim()];
    const auth = { Authorization: `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}` };
    const base = `http://${server.address}:${server.port}/far`;
    assert.equal((await fetch(`${base}/config`, { method: 'HEAD', headers: auth })).status, 200);
    assert.equal((await fetch(`${base}/config`, { method: 'DELETE', headers: auth })).status, 403);
    assert.equal((await fetch(`${base}/config`, { method: 'HEAD', headers: auth })).status, 200);

    chmodSync(server.auth!.passwordFile, 0o644);
    try {
      await assert.rejects(initOffsite(dest, resticOptions(config)), /accessible by others/);
    } finally {
      chmodSync(server.auth!.passwordFile, 0o600);
    }
    const wrong = join(root, 'wrong-http');
    writeFileSync(wrong, 'not-the-password\n', { mode: 0o600 });
    await assert.rejects(
      initOffsite({ ...dest, httpAuth: { user, passwordFile: wrong } }, resticOptions(config)),
      (err: Error & { type?: string }) => {
        assert.equal(err.type, 'ResticWrongPasswordError');
        assert.ok(!err.message.includes('not-the-password'), err.message);
        return true;
      },
    );
  });

  it('is stopped by its PID', async () => {
    const pid = server.process.pid!;
    await server.stop();
    assert.equal(existsSync(`/proc/${pid}`), false);
    assert.equal(await reachable({ host: server.address, port: server.port }, 500), false);
  });
});
