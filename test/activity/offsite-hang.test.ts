import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readOffsiteFreshness } from '../../adapters/restic/offsite-freshness';
import { parseConfig } from '../../config/load';
import { childrenOf } from '../helpers/child-processes';

/**
 * An off-site server that takes connections and never answers (a hung proxy, a wedged NAS) on 127.0.0.19:
 * what `status`, the watchdog and the metrics read of it comes back within its answerSeconds, as stale, and
 * the restic that asked is gone. Real restic 0.14.
 */
describe('an off-site server that never answers (real restic)', () => {
  const root = mkdtempSync(join(tmpdir(), 'cluster-backup-offsite-hang-'));
  const held: Socket[] = [];
  let server: Server;
  let port = 0;

  before(async () => {
    server = createServer((socket) => held.push(socket.on('error', () => {})));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.19', resolve));
    port = (server.address() as { port: number }).port;
  });
  after(async () => {
    for (const socket of held) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
    rmSync(root, { recursive: true, force: true });
  });

  it('is reported stale after answerSeconds with the reason, and no restic is left waiting on it', async () => {
    writeFileSync(join(root, 'far.key'), 'far-restic-password\n', { mode: 0o600 });
    const config = parseConfig(
      {
        hosts: { hv: { host: '127.0.0.1', user: 'backup', privateKeyFile: '/k', knownHostsFile: '/kh' } },
        hypervisor: { host: 'hv', imageArea: '/img' },
        store: { root: join(root, 'store'), engine: 'restic', restic: { passwordFile: join(root, 'far.key') } },
        offsite: {
          far: {
            repository: `rest:http://127.0.0.19:${port}/far/`,
            passwordFile: join(root, 'far.key'),
            answerSeconds: 2,
          },
        },
      },
      'test',
      root,
    );
    assert.equal(
      parseConfig({ ...config, offsite: { far: { ...config.offsite.far, answerSeconds: undefined } } }, 't', root)
        .offsite.far!.answerSeconds,
      60,
    );
    const started = Date.now();
    const [far] = await readOffsiteFreshness(config, new Date());
    const seconds = (Date.now() - started) / 1000;
    console.log(`after ${seconds.toFixed(1)} s: ${JSON.stringify(far)}`);
    assert.ok(held.length >= 1, 'restic did connect to the hung server');
    assert.deepEqual([far!.repository, far!.stale], ['far', true]);
    assert.equal(far!.reason, 'the server gave no answer within 2 s (offsite.far.answerSeconds)');
    assert.ok(seconds < 2 + 5 + 3, `gave up within answerSeconds and the kill grace (${seconds} s)`);
    const restics = childrenOf(process.pid).filter(({ argv }) => argv[0]?.endsWith('restic'));
    assert.deepEqual(restics, [], 'no restic left asking the hung server');
  });
});
