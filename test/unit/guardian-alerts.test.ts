import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createGuardianActivities } from '../../activities/guardian';
import { createServices } from '../../activities/services';
import { parseConfig } from '../../config/load';

describe('the guardian`s alert about overlays a run left', () => {
  it('says in its subject when a merge failed, and names each VM with the run that left it', async () => {
    const root = mkdtempSync(join(tmpdir(), 'cluster-backup-guardian-alert-'));
    try {
      const config = parseConfig(
        {
          hosts: { c: { host: '127.0.0.2', user: 'u', privateKeyFile: '/k', knownHostsFile: '/kh' } },
          supim: { host: 'c', sourceTemplate: '/d/{yyyy}/{ddd}', destinationRoot: '/b' },
          mail: { outbox: join(root, 'outbox'), recipients: { weekly: ['ops@example.org'] } },
        },
        'test',
        root,
      );
      const { sendOverlaysMergedAlert } = createGuardianActivities({
        services: createServices({ config, openSsh: () => Promise.reject(new Error('no SSH')) }),
      });
      const merged = await sendOverlaysMergedAlert([
        { vm: 'db', leftBy: 'vms-2026-w48', merged: ['vda'], removed: ['/v/db.qcow2.cluster-backup-overlay-x.qcow2'] },
      ]);
      const failed = await sendOverlaysMergedAlert([
        { vm: 'db', merged: [], removed: [], error: 'block job failed' },
        { vm: 'web', leftBy: 'vms-2026-w48', merged: ['vda'], removed: [] },
      ]);
      // Quoted-printable: a line ending in = goes on in the next.
      const mergedText = readFileSync(merged.where, 'utf8').replace(/=\n/g, '');
      assert.match(mergedText, /Subject: \[cluster-backup\] ALERT overlays a run left merged back: db/);
      assert.match(mergedText, /db: on overlays left by run vms-2026-w48; disks vda merged back/);
      const failedText = readFileSync(failed.where, 'utf8').replace(/=\n/g, '');
      assert.match(failedText, /Subject: \[cluster-backup\] ALERT overlays a run left NOT all merged back:\s+db, web/);
      assert.match(
        failedText,
        /db: on overlays left by run \(unknown: its lock was released\); NOT merged: block job failed/,
      );
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
