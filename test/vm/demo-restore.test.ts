import assert from 'node:assert/strict';
import { pipeline } from 'node:stream/promises';
import { resticOptions } from '../../activities/services';
import { ResticImageSets } from '../../adapters/image-sets/restic-image-sets';
import { Restic } from '../../adapters/restic/restic';
import { execFile, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  createWriteStream,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { simpleParser } from 'mailparser';
import { parse, stringify } from 'yaml';
import { withSsh } from '../../adapters/ssh/ssh-session';
import { bootProbe } from '../../adapters/hypervisor/boot-probe';
import { LibvirtDriver } from '../../adapters/hypervisor/libvirt-driver';
import { domainSummary } from '../../adapters/hypervisor/restore-xml';
import { loadConfig } from '../../config/load';
import type { Config } from '../../config/schema';
import type { RestoreTestLog } from '../../domain/restore';
import { PROJECT_ROOT } from '../../scripts/sandbox/paths';
import { startChild, stopProcess } from '../../scripts/sandbox/processes';
import { eventually } from '../helpers/eventually';
import { spawnWorker } from '../helpers/worker-process';

const run = promisify(execFile);
const DEMO_JS = join(PROJECT_ROOT, 'dist', 'scripts', 'demo.js');
/** What the README's commands name, and what this test runs them on instead: its own demo and an empty folder. */
const README_CONFIG = '.data/demo/cluster-backup.yaml';
const README_DAY_TARGET = '"$PWD/.data/demo/compute/restored/day"';

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
/** Every file under a folder (relative path -> SHA-256). */
const hashes = (dir: string) =>
  Object.fromEntries(
    readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => [relative(dir, join(e.parentPath, e.name)), sha256(join(e.parentPath, e.name))]),
  );

/** A shell command line as an operator types it, from the checkout: exit code and output. */
async function shell(script: string): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await run('bash', ['-c', script], { cwd: PROJECT_ROOT, maxBuffer: 16 << 20 });
    return { code: 0, out: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    if (typeof e.code !== 'number') throw err;
    return { code: e.code, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

/** The README's "Restoring" demo block: the `cb()` definition and the commands, in order. */
function readmeRestoreBlock(): { define: string; commands: string[] } {
  const readme = readFileSync(join(PROJECT_ROOT, 'README.md'), 'utf8');
  const block = /<!-- restore-doc-test:start -->\s*```sh\n([\s\S]*?)```\s*<!-- restore-doc-test:end -->/.exec(readme);
  assert.ok(block, 'the README has the restore-doc-test block');
  const lines = block[1]!.split('\n').filter((l) => l.trim() && !l.startsWith('#'));
  const define = lines.find((l) => l.startsWith('cb() '));
  assert.ok(define, 'the block defines cb()');
  return { define, commands: lines.filter((l) => l.startsWith('cb ')) };
}

// The demo with its VMs, once for the whole file (two TCG guests: booting them is the slow part); every case
// works on it as an operator would, with `npm start -- --keep-running` in another shell.
describe('restoring on the demo, as the README says (npm start -- --keep-running)', { concurrency: false }, () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'cluster-backup-demo-restore-'));
  chmodSync(dataDir, 0o755); // the sandbox's login user reads its authorized_keys below it
  let demo: ChildProcess;
  let out = '';
  let configFile: string;
  let config: Config;
  const virsh = async (...args: string[]) =>
    (await run('virsh', ['-q', '-c', config.hypervisors[0]!.uri, ...args])).stdout.trim();

  before(async () => {
    demo = startChild(process.execPath, [DEMO_JS, '--keep-running', '--data-dir', dataDir, '--any-ports'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    demo.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    demo.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    await eventually(
      async () => {
        if (demo.exitCode !== null) throw new assert.AssertionError({ message: `the demo ended early:\n${out}` });
        return out.includes('Everything stays up.') || undefined;
      },
      'the demo to be up',
      900_000,
    ).catch((err: Error) => assert.fail(`${err.message}\n${out}`));
    configFile = join(dataDir, 'cluster-backup.yaml');
    config = loadConfig(configFile);
  });

  after(async () => {
    if (demo && demo.exitCode === null) await stopProcess(demo, 30_000);
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('npm start sets the guests` boot-test pattern, runs one boot test and prints it with the others: PASSED', () => {
    assert.equal(config.restoreTest.pattern, 'cbguest: ready');
    assert.ok(config.restoreTest.timeoutSeconds <= 120, 'a short boot-test timeout');
    assert.match(out, /^== restore test /m);
    assert.match(
      out,
      /^restore test cbtest-(web|db|batch) set \d{8}T\d{6}Z: PASSED - running, console: cbguest: ready \(boot \d+\)$/m,
      out,
    );
  });

  it('runs the README "Restoring" commands: restore vm --as, restore test passes, restore day --to an empty folder', async () => {
    const { define, commands } = readmeRestoreBlock();
    // Below the folder the demo gives the compute host's login user and names in its restoreRoots.
    const target = join(dataDir, 'compute', 'restored', 'day');
    assert.deepEqual(readdirSync(join(target, '..')), [], 'the demo`s restore folder starts empty');
    const results = new Map<string, { code: number; out: string }>();
    for (const command of commands) {
      const line = `${define}\n${command}`
        .replaceAll(README_CONFIG, configFile)
        .replaceAll(README_DAY_TARGET, JSON.stringify(target));
      results.set(command, await shell(line));
    }
    const of = (words: string) => {
      const command = commands.find((c) => c.startsWith(`cb ${words}`));
      assert.ok(command, `the README runs cb ${words}`);
      const result = results.get(command)!;
      assert.equal(result.code, 0, `${command}:\n${result.out}`);
      return result.out;
    };
    try {
      assert.match(of('store verify'), /^cbtest-web\/\d{8}T\d{6}Z: ok /m);

      const restored = /^restore cbtest-web as cbtest-web-copy from set (\d{8}T\d{6}Z): OK$/m.exec(of('restore vm'));
      assert.ok(restored, 'restore vm --as says OK');
      assert.match(await virsh('domstate', '--domain', 'cbtest-web-copy'), /shut off/);
      assert.match(await virsh('domstate', '--domain', 'cbtest-web'), /running/, 'the original runs on');
      const copy = domainSummary(await virsh('dumpxml', '--inactive', '--domain', 'cbtest-web-copy'));
      assert.notEqual(copy.uuid, domainSummary(await virsh('dumpxml', '--inactive', '--domain', 'cbtest-web')).uuid);
      // The demo's store is a restic repository: the copy's disk hashes as the set's record says.
      const record = await new ResticImageSets(new Restic(resticOptions(config))).readManifest(
        'cbtest-web',
        restored[1]!,
      );
      const vda = record!.images.find((image) => image.disk === 'vda')!;
      assert.equal(sha256(copy.disks[0]!.path), vda.sha256, 'the copy`s disk is the stored image');

      assert.match(
        of('restore test'),
        /^restore test cbtest-web set \d{8}T\d{6}Z: PASSED - running, console: cbguest: ready/m,
      );

      const day = /^restore day (\d{4})-(\d{3}) -> compute:(\S+): OK$/m.exec(of('restore day'));
      assert.ok(day, 'restore day says OK');
      assert.equal(day[3], target);
      const backedUp = hashes(join(config.supim!.destinationRoot, day[1]!, day[2]!));
      assert.ok(Object.keys(backedUp).length > 0);
      assert.deepEqual(hashes(target), backedUp, 'the restored folder holds the backed-up files');

      assert.match(of('status'), /^restore test "cbtest-web" set \d{8}T\d{6}Z: PASSED at /m);
    } finally {
      rmSync(target, { recursive: true, force: true });
    }
  });

  it('a wrong pattern fails within its timeout, and the result, the email and status quote the console', async () => {
    const timeoutSeconds = 20;
    const raw = parse(readFileSync(configFile, 'utf8')) as Record<string, Record<string, unknown>>;
    const wrongFile = join(dataDir, 'wrong-pattern.yaml');
    writeFileSync(
      wrongFile,
      stringify({
        ...raw,
        temporal: { ...raw.temporal, taskQueue: 'wrong-pattern' },
        restoreTest: { pattern: 'no such line', timeoutSeconds },
      }),
    );
    const worker = spawnWorker(wrongFile, join(dataDir, 'wrong-pattern-worker.log'));
    try {
      const started = Date.now();
      const text = await shell(`npx cluster-backup --config ${wrongFile} restore test cbtest-db`);
      const seconds = (Date.now() - started) / 1000;
      assert.equal(text.code, 1, text.out);
      assert.match(
        text.out,
        /^restore test cbtest-db set \d{8}T\d{6}Z: FAILED - running, but no console line matching \/no such line\/ within 20 s\n {2}last console lines:\n(?: {2}\| .*\n)* {2}\| cbguest: ready \(boot \d+\)$/m,
      );
      // The worker's start, the push and the clean-up come on top; the boot itself stops at the limit.
      assert.ok(seconds < timeoutSeconds + 40, `the CLI returned after ${seconds} s`);

      // What the store keeps of it (status --json): the console as cleaned, bounded lines; the boot stopped in time.
      const status = await shell(`npx cluster-backup --config ${configFile} status --json`);
      const kept = (JSON.parse(status.out) as { restoreTests: RestoreTestLog }).restoreTests['cbtest-db']!;
      assert.equal(kept.passed, false);
      assert.ok(kept.bootSeconds! < timeoutSeconds + 5, `booted for ${kept.bootSeconds} s`);
      assert.ok(kept.console!.length <= 8);
      assert.match(kept.console!.at(-1)!, /^cbguest: ready \(boot \d+\)$/);
      const words = await shell(`npx cluster-backup --config ${configFile} status`);
      assert.match(
        words.out,
        /^restore test "cbtest-db" set \S+: FAILED at \S+ \(running, but no console line matching \/no such line\/ within 20 s\)\n {2}last console lines:\n(?: {2}\| .*\n)* {2}\| cbguest: ready/m,
      );

      const mails = await Promise.all(
        readdirSync(config.mail.outbox!)
          .filter((f) => f.endsWith('.eml'))
          .map((f) => simpleParser(readFileSync(join(config.mail.outbox!, f)))),
      );
      const mail = mails.find((m) => m.subject?.startsWith('[cluster-backup] restore test FAILED: cbtest-db'));
      assert.ok(mail, 'the failed test sent its report');
      assert.match(String(mail.text), /\nlast console lines:\n(?:\| .*\n)*\| cbguest: ready \(boot \d+\)\n/);
    } finally {
      await stopProcess(worker);
    }
  });

  it('a boot probe run again after its time limit (a retried attempt) gets only what is left of it', async () => {
    // The demo's store is a restic repository: the newest set's disk, dumped as the restore would push it.
    const sets = new ResticImageSets(new Restic(resticOptions(config)));
    const stamp = (await sets.listSets('cbtest-web')).filter((set) => set.verified).at(-1)!.stamp;
    const manifest = (await sets.readManifest('cbtest-web', stamp))!;
    const workDir = join(config.hypervisors[0]!.imageArea, 'probe-retried');
    mkdirSync(workDir, { recursive: true });
    const disk = join(config.hypervisors[0]!.imageArea, 'probe-retried-vda.raw'); // the probe empties its workDir
    const vda = manifest.images.find((image) => image.disk === 'vda')!;
    await pipeline(sets.diskStream('cbtest-web', vda.restic!.snapshot, 'vda'), createWriteStream(disk));
    const started = Date.now();
    const result = await withSsh('hypervisor', config.hosts.hypervisor!, (ssh) =>
      bootProbe({
        ssh,
        driver: new LibvirtDriver(ssh, config.hypervisors[0]!.uri),
        savedXml: manifest.domainXml!,
        images: [{ target: 'vda', path: disk, format: 'raw' }],
        name: 'cluster-backup-probe-retried',
        workDir,
        memoryMiB: 128,
        timeoutSeconds: 60,
        startedAtMs: started - 60_000, // the first attempt began a minute ago
        pattern: 'no such line',
      }),
    );
    const seconds = (Date.now() - started) / 1000;
    assert.equal(result.passed, false);
    assert.match(result.detail, /within 60 s/);
    assert.ok(seconds < 30, `the retried probe took ${seconds} s`);
    assert.doesNotMatch(await virsh('list', '--all', '--name'), /cluster-backup-probe/);
  });

  it('the demo ends OK on Ctrl-C', async () => {
    const exited = new Promise<number | null>((resolve) => demo.once('exit', (code) => resolve(code)));
    demo.kill('SIGINT');
    assert.equal(await exited, 0, out);
  });
});
