// Runs every compiled test file with node's test runner. Optional filter: `npm test -- <substring>`.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const require = createRequire(import.meta.url);
const { endRecordedProcesses } = require('../dist/scripts/sandbox/processes.js');

function find(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return find(path);
    return name.endsWith('.test.js') ? [path] : [];
  });
}

const filters = process.argv.slice(2);
const files = find('dist/test')
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .sort();
if (files.length === 0) {
  console.error(`no test files match ${filters.join(' ')}`);
  process.exit(1);
}
const pidDir = mkdtempSync(join(tmpdir(), 'cluster-backup-pids-'));
// Two files at a time: a machine of this project has two cores, and the heavy tests run their own servers.
const result = spawnSync(
  process.execPath,
  ['--test', '--test-concurrency=2', '--test-reporter=spec', '--test-timeout=900000', ...files],
  { stdio: 'inherit', env: { ...process.env, CLUSTER_BACKUP_PID_DIR: pidDir } },
);
const leftovers = endRecordedProcesses(pidDir);
if (leftovers.length)
  console.error(`ended ${leftovers.length} process(es) a test left running: ${leftovers.join(' ')}`);
rmSync(pidDir, { recursive: true, force: true });
process.exit(result.status ?? 1);
