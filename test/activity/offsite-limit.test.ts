import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { offsiteUploadLimit } from '../../activities/offsite';
import { resticOptions } from '../../activities/services';
import { dayTags } from '../../activities/supim-restic';
import { copySnapshots, initOffsite, offsiteEnvOf } from '../../adapters/restic/offsite';
import { Restic } from '../../adapters/restic/restic';
import { parseConfig } from '../../config/load';
import { startRcloneRest, type SandboxRcloneRest } from '../../scripts/sandbox/rclone-rest';

const MiB = 1 << 20;
/** What is copied: one day of random (incompressible) bytes; the cap lets 1/20 of it through per second. */
const BYTES = 4 * MiB;
const SECONDS = 20;
const CAP = Math.floor(BYTES / SECONDS);

/** The off-site copy's upload cap (restic --limit-upload) on real restic 0.14 and rclone (127.0.0.28). */
describe('off-site copy bandwidth cap (real restic + rclone)', () => {
  const root = mkdtempSync(join(tmpdir(), 'cluster-backup-offsite-limit-'));
  let server: SandboxRcloneRest;
  const key = (name: string) => {
    const file = join(root, `${name}.key`);
    writeFileSync(file, `${name}-restic-password\n`, { mode: 0o600 });
    return file;
  };
  const configWith = (offsite: Record<string, unknown>) =>
    parseConfig(
      {
        hosts: { hv: { host: '127.0.0.1', user: 'backup', privateKeyFile: '/k', knownHostsFile: '/kh' } },
        hypervisor: { host: 'hv', imageArea: '/img' },
        store: { root: join(root, 'store'), engine: 'restic', restic: { passwordFile: key('primary') } },
        transfer: { maxBytesPerSecond: CAP },
        offsite: {
          far: {
            repository: `${server.url}far/`,
            passwordFile: key('far'),
            httpUser: server.auth!.user,
            httpPasswordFile: server.auth!.passwordFile,
            ...offsite,
          },
        },
      },
      'test',
      root,
    );

  before(async () => {
    server = await startRcloneRest({ dir: join(root, 'server'), address: '127.0.0.28' });
  });
  after(async () => {
    await server?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('takes its own cap, else transfer.maxBytesPerSecond; 0 of its own lifts the cap', () => {
    assert.equal(offsiteUploadLimit(configWith({}), 'far'), CAP);
    assert.equal(offsiteUploadLimit(configWith({ maxBytesPerSecond: 1000 }), 'far'), 1000);
    assert.equal(offsiteUploadLimit(configWith({ maxBytesPerSecond: 0 }), 'far'), 0);
  });

  it(`copies ${BYTES / MiB} MiB capped at 1/${SECONDS} of it per second in ${SECONDS} s (within 10 %)`, async () => {
    const config = configWith({});
    const primary = new Restic(resticOptions(config));
    await primary.init();
    await primary.backupStdin({
      stdin: Readable.from([randomBytes(BYTES)]),
      filename: 'supim/2026-341.tar',
      tags: dayTags('2026-341'),
    });
    const dest = offsiteEnvOf(config, 'far');
    await initOffsite(dest, resticOptions(config));
    const started = Date.now();
    const copied = await copySnapshots(dest, resticOptions(config), {
      tagGroups: [['day=2026-341']],
      maxBytesPerSecond: offsiteUploadLimit(config, 'far'),
    });
    const seconds = (Date.now() - started) / 1000;
    const added = (await new Restic(dest).stats('raw-data')).total_size;
    console.log(
      `copied ${added} bytes at --limit-upload ${Math.floor(CAP / 1024)} KiB/s in ${seconds.toFixed(1)} s (expected ${SECONDS} s)`,
    );
    assert.equal(copied.saved, 1);
    assert.ok(Math.abs(seconds - SECONDS) <= SECONDS * 0.1, `${seconds.toFixed(1)} s, expected ${SECONDS} s ± 10 %`);
  });
});
