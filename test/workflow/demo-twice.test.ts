import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, describe, it } from 'node:test';
import { PROJECT_ROOT } from '../../scripts/sandbox/paths';

const run = promisify(execFile);

/** The demo as `npm start` runs it (compiled), in its own state folder: exit code and output. */
async function demo(dataDir: string): Promise<{ code: number; out: string }> {
  const args = [join(PROJECT_ROOT, 'dist', 'scripts', 'demo.js'), '--no-vms', '--data-dir', dataDir, '--any-ports'];
  try {
    const { stdout, stderr } = await run(process.execPath, args, { timeout: 300_000, maxBuffer: 16 << 20 });
    return { code: 0, out: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

/** `  2026-331 (2026-11-27)  copied    ...` lines of the daily summary: label -> status. */
function dayStatuses(out: string): Map<string, string> {
  return new Map([...out.matchAll(/^ {2}(\d{4}-\d{3}) \(\d{4}-\d\d-\d\d\) +(\S+)/gm)].map((m) => [m[1]!, m[2]!]));
}

// The hypervisor part is left out (--no-vms): booting QEMU guests twice in software emulation would make this
// the slowest test of all; the weekly sandbox run twice in a row is the VM tests' job.
describe('the demo, twice in a row on the same state', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'cluster-backup-demo-'));
  chmodSync(dataDir, 0o755); // the sandbox's login user reads its authorized_keys below it
  after(() => rmSync(dataDir, { recursive: true, force: true }));

  it('ends OK both times, and the second run copies nothing the first one backed up', async () => {
    const first = await demo(dataDir);
    assert.equal(first.code, 0, first.out);
    assert.match(first.out, /^daily SUPIM backup for \S+ \(America\/Sao_Paulo\): OK$/m);
    const copied = [...dayStatuses(first.out)].filter(([, status]) => status === 'copied').map(([day]) => day);
    assert.ok(copied.length > 0, `the first run copies the settled days:\n${first.out}`);

    const second = await demo(dataDir);
    assert.equal(second.code, 0, second.out);
    assert.match(second.out, /^daily SUPIM backup for \S+ \(America\/Sao_Paulo\): OK$/m);
    assert.match(second.out, /schedule cluster-backup-daily: unchanged/, 'the schedules survive in the SQLite state');
    const again = dayStatuses(second.out);
    for (const day of copied) assert.equal(again.get(day), 'complete', `${day} is not copied twice`);
  });
});
