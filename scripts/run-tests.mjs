// Runs every compiled test file with node's test runner. Optional filter: `npm test -- <substring>`.
//
// Two lanes, one per core of a project machine: the files that start the shared sandbox hypervisor (one at a
// time per machine, see scripts/sandbox/libvirt-host.ts) run one after another in one lane; every other
// file (unit, workflow, activity tests and VM files with a hypervisor of their own, `isolated: true`) runs in
// the other, longest first. Before, a file waiting for the hypervisor lock held a slot the others needed.
import { Buffer } from 'node:buffer';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
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

const source = (f) => readFileSync(f, 'utf8');
// The VM harness, the sandbox hypervisor itself, or the whole demo with its VMs (demo-restore's DEMO_JS).
const startsHypervisor = (f) => /startVmHarness|startHypervisor|DEMO_JS/.test(source(f));
const ownHypervisor = (f) => /isolated: true/.test(source(f));
const shared = files.filter((f) => startsHypervisor(f) && !ownHypervisor(f));
// The isolated VM files first: they are the long ones of their lane.
const others = [
  ...files.filter((f) => startsHypervisor(f) && ownHypervisor(f)),
  ...files.filter((f) => !startsHypervisor(f)),
];

const pidDir = mkdtempSync(join(tmpdir(), 'cluster-backup-pids-'));
const env = { ...process.env, CLUSTER_BACKUP_PID_DIR: pidDir };
const args = ['--test', '--test-concurrency=1', '--test-reporter=spec', '--test-timeout=900000'];

/** One lane: its output streamed (`live`) or kept and printed whole when it ends, so lanes never interleave. */
function lane(name, laneFiles, live) {
  if (laneFiles.length === 0) return Promise.resolve(0);
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(process.execPath, [...args, ...laneFiles], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const kept = [];
    const out = (chunk) => (live ? process.stdout.write(chunk) : kept.push(chunk));
    child.stdout.on('data', out);
    child.stderr.on('data', out);
    child.on('close', (code, signal) => {
      if (!live) process.stdout.write(Buffer.concat(kept));
      const seconds = Math.round((Date.now() - started) / 1000);
      console.log(`# lane ${name}: ${laneFiles.length} file(s), ${seconds} s, exit ${code ?? signal}`);
      resolve(code ?? 1);
    });
  });
}

const codes = await Promise.all([lane('shared hypervisor', shared, true), lane('others', others, false)]);
const leftovers = endRecordedProcesses(pidDir);
if (leftovers.length)
  console.error(`ended ${leftovers.length} process(es) a test left running: ${leftovers.join(' ')}`);
rmSync(pidDir, { recursive: true, force: true });
process.exit(codes.every((c) => c === 0) ? 0 : 1);
