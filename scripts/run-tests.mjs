// Runs every compiled test file with node's test runner. Optional filter: `npm test -- <substring>`.
//
// Three files at a time, scheduled here, longest first, so that the lanes end together: each free lane takes
// the longest file left that may start. At most two heavy files at once (a project machine has two cores):
// the VM files, and files that say `test-runner: heavy` (another emulated machine, such as libguestfs's
// appliance). The VM files are the long ones, mostly waiting on emulated guests and on outages the tests
// make; each starts a libvirtd of its own (test/helpers/vm-harness.ts: isolated in a mount namespace), so two
// run side by side, while the third lane runs the light files (time-skipping, unit) beside them.
// The files that start the machine's shared sandbox hypervisor (the demo, or `isolated: false`) take the
// machine-wide lock of scripts/sandbox/libvirt-host.ts: never two of them at once, or one lane would wait.
// Costs (seconds per file) come from test/costs.json (measured; `--record-costs` rewrites it after a run)
// and .data/test-costs.json (the last full run on this machine). Each file's output is printed whole.
import { Buffer } from 'node:buffer';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const require = createRequire(import.meta.url);
const { endRecordedProcesses } = require('../dist/scripts/sandbox/processes.js');

const ROOT = 'dist/test';
const COSTS = 'test/costs.json';
const LOCAL_COSTS = '.data/test-costs.json';
const LANES = Number(process.env.CLUSTER_BACKUP_TEST_LANES ?? 3);
const HEAVY_LANES = Math.min(LANES, 2);
/** A file not measured yet: a VM file costs minutes, another seconds. */
const DEFAULT_COST = { vm: 240, other: 20 };

function find(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return find(path);
    return name.endsWith('.test.js') ? [path] : [];
  });
}

const args = process.argv.slice(2);
const recordCosts = args.includes('--record-costs');
const filters = args.filter((a) => a !== '--record-costs');
const files = find(ROOT)
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .sort();
if (files.length === 0) {
  console.error(`no test files match ${filters.join(' ')}`);
  process.exit(1);
}

/** `vm/restic-store` for dist/test/vm/restic-store.test.js: the key in the cost files. */
const keyOf = (file) => relative(ROOT, file).replace(/\.test\.js$/, '');
const readCosts = (path) => (existsSync(path) ? JSON.parse(readFileSync(path, 'utf8')) : {});
const known = { ...readCosts(COSTS), ...readCosts(LOCAL_COSTS) };
const jobs = files.map((file) => {
  const source = readFileSync(file, 'utf8');
  const vm = /startVmHarness|startHypervisor|DEMO_JS/.test(source);
  const heavy = vm || /test-runner: heavy/.test(source);
  // The demo runs its first hypervisor on the machine's shared libvirt folders; so does `isolated: false`,
  // and startHypervisor without `isolated: true` (the VM harness isolates by default).
  const shared =
    /DEMO_JS|isolated: false/.test(source) || (/startHypervisor\)/.test(source) && !/isolated: true/.test(source));
  return { file, key: keyOf(file), shared, heavy, cost: known[keyOf(file)] ?? DEFAULT_COST[vm ? 'vm' : 'other'] };
});
const queue = [...jobs].sort((a, b) => b.cost - a.cost || a.key.localeCompare(b.key));

const pidDir = mkdtempSync(join(tmpdir(), 'cluster-backup-pids-'));
const running = new Set();
let sharedBusy = false;
let heavyRunning = 0;
let stopping = false;
const results = [];
const started = Date.now();
const seconds = (ms) => (ms / 1000).toFixed(1);

/**
 * The longest file left that may start now: a shared-hypervisor file only while no other one runs, a heavy
 * one only while fewer than HEAVY_LANES do.
 */
function next() {
  const at = queue.findIndex((j) => (!j.shared || !sharedBusy) && (!j.heavy || heavyRunning < HEAVY_LANES));
  return at >= 0 ? queue.splice(at, 1)[0] : undefined;
}

function runFile(job, lane) {
  return new Promise((resolve) => {
    if (job.shared) sharedBusy = true;
    if (job.heavy) heavyRunning++;
    const t0 = Date.now();
    console.log(`▷ ${job.key} (lane ${lane}, at ${seconds(t0 - started)} s)`);
    const child = spawn(process.execPath, ['--test', '--test-reporter=spec', '--test-timeout=900000', job.file], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, CLUSTER_BACKUP_PID_DIR: pidDir },
    });
    running.add(child);
    const out = [];
    child.stdout.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => out.push(d));
    child.on('close', (code, signal) => {
      running.delete(child);
      if (job.shared) sharedBusy = false;
      if (job.heavy) heavyRunning--;
      const ms = Date.now() - t0;
      const text = Buffer.concat(out).toString('utf8');
      const count = (name) => Number(new RegExp(`^ℹ ${name} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
      const ok = code === 0;
      results.push({ ...job, ms, ok, tests: count('tests'), pass: count('pass'), fail: count('fail') });
      process.stdout.write(text.endsWith('\n') || !text ? text : `${text}\n`);
      console.log(`${ok ? '✔' : '✖'} ${job.key}: ${seconds(ms)} s${ok ? '' : ` (exit ${code ?? signal})`}\n`);
      resolve();
    });
  });
}

async function lane(n) {
  while (!stopping && queue.length > 0) {
    const job = next();
    if (job) await runFile(job, n);
    else await sleep(200); // only files left that wait for a shared-hypervisor or heavy file to end
  }
}

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    stopping = true;
    for (const child of running) child.kill(sig);
  });
}

await Promise.all(Array.from({ length: Math.min(LANES, jobs.length) }, (_, i) => lane(i + 1)));

const leftovers = endRecordedProcesses(pidDir);
if (leftovers.length)
  console.error(`ended ${leftovers.length} process(es) a test left running: ${leftovers.join(' ')}`);
rmSync(pidDir, { recursive: true, force: true });

const total = Date.now() - started;
const sum = (key, list = results) => list.reduce((s, r) => s + r[key], 0);
console.log('cost per file (s), longest first (* = on the shared sandbox hypervisor):');
for (const r of [...results].sort((a, b) => b.ms - a.ms))
  console.log(`  ${seconds(r.ms).padStart(7)} ${r.shared ? '*' : ' '} ${r.key}${r.ok ? '' : '  FAILED'}`);
console.log(
  `${results.length} files, ${sum('tests')} tests: ${sum('pass')} passed, ${sum('fail')} failed; ` +
    `${seconds(total)} s wall, ${seconds(sum('ms'))} s in files`,
);
const failed = results.filter((r) => !r.ok);
if (failed.length) console.log(`failed files: ${failed.map((r) => r.key).join(' ')}`);

// The measured costs order the next run: a full run's are kept for this machine, --record-costs commits them.
const measured = Object.fromEntries(results.filter((r) => r.ok).map((r) => [r.key, Math.round(r.ms / 1000)]));
if (filters.length === 0 || recordCosts) {
  mkdirSync('.data', { recursive: true });
  writeFileSync(LOCAL_COSTS, `${JSON.stringify({ ...readCosts(LOCAL_COSTS), ...measured }, null, 2)}\n`);
}
if (recordCosts) {
  const sorted = Object.entries({ ...readCosts(COSTS), ...measured }).sort(([a], [b]) => a.localeCompare(b));
  writeFileSync(COSTS, `${JSON.stringify(Object.fromEntries(sorted), null, 2)}\n`);
}
process.exit(failed.length || stopping || results.length < jobs.length ? 1 : 0);
