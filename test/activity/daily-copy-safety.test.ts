import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  appendFileSync,
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities, type ActivityDeps } from '../../activities';
import { createServices } from '../../activities/services';
import { syncFileSystem, type DayCopyProgress } from '../../adapters/transfer/day-copy-rules';
import { PARTIAL_SUFFIX } from '../../adapters/local/local-tree';
import { STORE_MARKER } from '../../adapters/local/store-root';
import { AdapterError } from '../../adapters/adapter-error';
import { Mailer } from '../../adapters/mail/mailer';
import { RemoteCommandError } from '../../adapters/ssh/remote-command-error';
import { SshSession } from '../../adapters/ssh/ssh-session';
import { parseConfig } from '../../config/load';
import { calendarDay } from '../../domain/julian-day';
import { renderPathTemplate } from '../../domain/path-template';
import { initStores } from '../../scripts/commands/store';
import { writeSupimDay } from '../../scripts/sandbox/supim-data';
import { forceCommand } from '../helpers/forced-command';
import { runActivity, runIn, supimSandbox, type SupimSandbox } from '../helpers/sandbox';

const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
const OLD = 1_700_000_000;

function allFiles(dir: string, prefix = ''): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? allFiles(join(dir, e.name), `${prefix}${e.name}/`) : [`${prefix}${e.name}`],
  );
}

/** The sandbox's activities with parts of the config (and of the other dependencies) replaced. */
function activitiesWith(box: SupimSandbox, overrides: Record<string, unknown>, deps: Partial<ActivityDeps> = {}) {
  const config = parseConfig({ ...box.config, ...overrides }, 'test', box.root);
  return createActivities({ config, services: createServices({ config, openSsh: (key) => SshSession.connect(key, config.hosts[key]!) }), ...deps });
}

function writeOld(path: string, content: string | Buffer): void {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, content);
  utimesSync(path, OLD, OLD);
}

describe('daily copy: one bad file never holds back the others (real sshd, non-root remote user)', () => {
  let box: SupimSandbox;
  before(async () => {
    box = await supimSandbox({ user: 'cbremote' });
  });
  after(() => box.cleanup());

  it('copies a day with a 255-byte file name completely, under the real names', async () => {
    const day = calendarDay('2026-04-01');
    const folder = renderPathTemplate(box.sourceTemplate, day);
    const longest = `${'n'.repeat(251)}.dat`; // NAME_MAX: the partial suffix cannot simply be appended
    const multibyte = `${'é'.repeat(125)}.nc`; // 253 bytes, the shortened partial name must not split a character
    const generated = writeSupimDay(box.sourceTemplate, day, { bytesPerFile: 5000 });
    writeOld(join(folder, longest), 'long name');
    writeOld(join(folder, 'output', multibyte), 'accented');
    const result = await runActivity(box.activities.backupSupimDay, day);
    assert.equal(result.status, 'copied', result.reason);
    assert.equal(result.filesCopied, generated.files.length + 2);
    assert.equal(readFileSync(join(result.destination, longest), 'utf8'), 'long name');
    assert.equal(readFileSync(join(result.destination, 'output', multibyte), 'utf8'), 'accented');
    for (const name of generated.files)
      assert.equal(sha(join(result.destination, name)), sha(join(generated.folder, name)), name);
    assert.ok(!allFiles(result.destination).some((f) => f.includes(PARTIAL_SUFFIX)), 'no partial file left');
    assert.equal((await runActivity(box.activities.backupSupimDay, day)).status, 'complete');
  });

  it('keeps every readable file of a day under its real name and names the unreadable one, without retrying', async () => {
    const day = calendarDay('2026-04-02');
    const generated = writeSupimDay(box.sourceTemplate, day, { bytesPerFile: 3000 });
    const secret = generated.files[4]!;
    chmodSync(join(generated.folder, secret), 0o600); // owned by root: the remote user cannot read it
    const result = await runActivity(box.activities.backupSupimDay, day);
    assert.equal(result.status, 'failed');
    assert.deepEqual(
      result.failedFiles?.map((f) => f.path),
      [secret],
    );
    assert.match(result.failedFiles![0]!.reason, /permission denied/i);
    assert.match(result.reason ?? '', new RegExp(`1 file\\(s\\) could not be copied: ${secret}`));
    assert.equal(result.filesCopied, generated.files.length - 1);
    const copied = allFiles(result.destination).sort();
    assert.deepEqual(copied, generated.files.filter((f) => f !== secret).sort());
    for (const name of copied) assert.equal(sha(join(result.destination, name)), sha(join(generated.folder, name)));
  });

  it('names a file whose name is not UTF-8 as not copied, instead of retrying the day', async () => {
    const day = calendarDay('2026-04-04');
    const generated = writeSupimDay(box.sourceTemplate, day, { bytesPerFile: 1000 });
    writeFileSync(
      Buffer.concat([Buffer.from(`${generated.folder}/latin1-`), Buffer.from([0xe9]), Buffer.from('.dat')]),
      'x',
    );
    const result = await runActivity(box.activities.backupSupimDay, day);
    assert.equal(result.status, 'failed');
    assert.deepEqual(
      result.failedFiles?.map((f) => f.path),
      ['latin1-\uFFFD.dat'],
    );
    assert.equal(result.filesCopied, generated.files.length);
  });

  it('a copy cancelled mid-stream names nothing; the next copy clears what it staged and copies the day', async () => {
    const day = calendarDay('2026-04-05');
    const generated = writeSupimDay(box.sourceTemplate, day, { bytesPerFile: 200_000 });
    // Small files all travel in the tar stream; 1 MiB/s spreads the 14 of them over about 3 s.
    const slow = activitiesWith(box, { transfer: { maxBytesPerSecond: 1 << 20 } });
    const env = new MockActivityEnvironment();
    env.on('heartbeat', (details: DayCopyProgress) => {
      if (details?.phase === 'copying' && details.filesDone >= 2) env.cancel();
    });
    // Unpaced, the whole day would be copied before the first heartbeat (nothing to cancel).
    await assert.rejects(runIn(env, slow.backupSupimDay, day));
    const staging = join(box.destinationRoot, '.cluster-backup', 'staging', day.label);
    const staged = allFiles(staging);
    assert.ok(staged.length >= 2 && staged.length < generated.files.length, `part of the day was staged: ${staged}`);
    const destination = join(box.destinationRoot, String(day.year), String(day.dayOfYear).padStart(3, '0'));
    assert.deepEqual(existsSync(destination) ? allFiles(destination) : [], [], 'nothing under a real name');

    const result = await runActivity(box.activities.backupSupimDay, day);
    assert.equal(result.status, 'copied', result.reason);
    for (const name of generated.files)
      assert.equal(sha(join(result.destination, name)), sha(join(generated.folder, name)), name);
    assert.equal(existsSync(staging), false, 'the staging folder is gone');
  });

  /**
   * A folder below the source root (a restore root) the remote user writes in; it also writes in the root
   * itself, where a restore keeps its partial files (.cluster-backup-restore).
   */
  const restoreTarget = (name: string) => {
    const to = join(box.root, 'source', name);
    mkdirSync(to);
    for (const folder of [join(box.root, 'source'), to]) chmodSync(folder, 0o777);
    return to;
  };

  it('backs up and restores a real file named like a partial file; copying its namesake never touches it', async () => {
    const day = calendarDay('2026-04-07');
    const folder = renderPathTemplate(box.sourceTemplate, day);
    const big = 'big.dat'; // over the tar stream's limit: fetched one by one, through a partial file
    const lookalike = `${big}${PARTIAL_SUFFIX}`;
    writeOld(join(folder, big), Buffer.alloc(3 << 20, 1));
    writeOld(join(folder, lookalike), 'a real file of the model, not ours');
    writeOld(join(folder, `small.dat${PARTIAL_SUFFIX}`), 'another one');
    const first = await runActivity(box.activities.backupSupimDay, day);
    assert.equal(first.status, 'copied', first.reason);
    assert.equal(first.filesCopied, 3);
    const backedUp = () => readFileSync(join(first.destination, lookalike), 'utf8');
    assert.equal(backedUp(), 'a real file of the model, not ours');

    // big.dat changes and is copied again: its partial file is not the lookalike's backup.
    appendFileSync(join(folder, big), 'more');
    utimesSync(join(folder, big), OLD + 1, OLD + 1);
    const second = await runActivity(box.activities.backupSupimDay, day);
    assert.equal(second.status, 'copied', second.reason);
    assert.equal(second.filesCopied, 1);
    assert.equal(backedUp(), 'a real file of the model, not ours');
    // big.dat changes and cannot be read: what its failed copy leaves is removed, the lookalike's backup stays.
    chmodSync(join(folder, big), 0o600);
    utimesSync(join(folder, big), OLD + 2, OLD + 2);
    const third = await runActivity(box.activities.backupSupimDay, day);
    assert.deepEqual(
      third.failedFiles?.map((f) => f.path),
      [big],
    );
    assert.equal(backedUp(), 'a real file of the model, not ours');
    assert.equal(sha(join(first.destination, big)), sha(join(folder, big)), 'the earlier copy of big.dat is kept');
    chmodSync(join(folder, big), 0o644);

    const to = restoreTarget('restored-2026-097');
    const restored = await runActivity(box.activities.restoreSupimDay, { day: day.label, to });
    assert.equal(restored.ok, true, restored.reason);
    assert.equal(restored.filesRestored, 3);
    assert.equal(restored.skippedCount, undefined);
    assert.equal(readFileSync(join(to, lookalike), 'utf8'), 'a real file of the model, not ours');
    assert.equal(readFileSync(join(to, `small.dat${PARTIAL_SUFFIX}`), 'utf8'), 'another one');
  });

  it('restore day names and counts what it does not restore (not a regular file) and is not OK', async () => {
    const day = calendarDay('2026-04-08');
    const backup = join(box.destinationRoot, '2026', '098');
    writeOld(join(backup, 'a.dat'), 'data');
    symlinkSync('/etc/passwd', join(backup, 'link.dat'));
    const to = restoreTarget('restored-2026-098');
    const restored = await runActivity(box.activities.restoreSupimDay, { day: day.label, to });
    assert.equal(restored.ok, false);
    assert.equal(restored.filesRestored, 1);
    assert.equal(restored.skippedCount, 1);
    assert.deepEqual(restored.skipped, ['link.dat (symlink, not restored)']);
    assert.match(restored.reason ?? '', /1 name\(s\) in the backup are not regular files, not restored/);
    assert.equal(existsSync(join(to, 'link.dat')), false);
  });

  it('refuses a day without copying anything when the backup root has no marker (unmounted disk)', async () => {
    const unmounted = await supimSandbox({ initStore: false });
    try {
      const day = calendarDay('2026-04-03');
      writeSupimDay(unmounted.sourceTemplate, day, { bytesPerFile: 100 });
      await assert.rejects(
        runActivity(unmounted.activities.backupSupimDay, day),
        (err: unknown) =>
          err instanceof ApplicationFailure &&
          err.nonRetryable === true &&
          /has no cluster-backup marker.*is the backup disk mounted\?.*cluster-backup store init/.test(err.message),
      );
      assert.equal(existsSync(unmounted.destinationRoot), false, 'the root is not created');

      const lines: string[] = [];
      await initStores(unmounted.config, (line) => lines.push(line));
      assert.deepEqual(lines, [`${unmounted.destinationRoot}: created`]);
      assert.ok(existsSync(join(unmounted.destinationRoot, STORE_MARKER)));
      assert.equal((await runActivity(unmounted.activities.backupSupimDay, day)).status, 'copied');
    } finally {
      await unmounted.cleanup();
    }
  });
});

describe('daily copy: a file that changes during the copy is not reported copied (real sshd)', () => {
  let box: SupimSandbox;
  before(async () => {
    box = await supimSandbox();
  });
  after(() => box.cleanup());

  it('makes the day not-yet, and the next run copies it, identical', async () => {
    const day = calendarDay('2026-05-01');
    const folder = renderPathTemplate(box.sourceTemplate, day);
    const growing = join(folder, 'growing.dat');
    writeOld(growing, Buffer.alloc(6 << 20, 1));
    writeOld(join(folder, 'steady.dat'), 'steady');
    // About 3 s for the large file: long enough to append while it is being read.
    const slow = activitiesWith(box, { transfer: { maxBytesPerSecond: 2 << 20 } });
    const env = new MockActivityEnvironment();
    let appended = false;
    env.on('heartbeat', (details: DayCopyProgress) => {
      if (!appended && details?.bytesDone > 0 && details.phase === 'copying') {
        appendFileSync(growing, 'more data written by the model');
        appended = true;
      }
    });
    const first = await runIn(env, slow.backupSupimDay, day);
    assert.ok(appended, 'the file was appended to during the copy');
    assert.equal(first.status, 'not-yet');
    assert.match(first.reason ?? '', /changed during the copy: growing\.dat/);
    assert.equal(existsSync(join(first.destination, 'growing.dat')), false, 'no stale copy under the real name');
    assert.equal(readFileSync(join(first.destination, 'steady.dat'), 'utf8'), 'steady');

    const second = await runActivity(box.activities.backupSupimDay, day);
    assert.equal(second.status, 'copied', second.reason);
    assert.equal(sha(join(second.destination, 'growing.dat')), sha(growing));
  });
});

describe('permissions of what the backup writes and reads', () => {
  let box: SupimSandbox;
  before(async () => {
    box = await supimSandbox();
  });
  after(() => box.cleanup());

  it('stores files 0600 and folders 0700 by default, or the configured mode', async () => {
    const day = calendarDay('2026-06-01');
    const generated = writeSupimDay(box.sourceTemplate, day, { bytesPerFile: 2000 });
    const big = join(generated.folder, 'big.dat');
    writeOld(big, Buffer.alloc(3 << 20, 7)); // through the SFTP path, not the tar stream
    const result = await runActivity(box.activities.backupSupimDay, day);
    assert.equal(result.status, 'copied', result.reason);
    const mode = (path: string) => statSync(path).mode & 0o777;
    for (const name of [...generated.files, 'big.dat']) assert.equal(mode(join(result.destination, name)), 0o600, name);
    assert.equal(mode(result.destination), 0o700);
    assert.equal(mode(join(result.destination, 'output')), 0o700);

    const shared = activitiesWith(box, { permissions: { fileMode: '0640', folderMode: '0750', group: '0' } });
    const next = calendarDay('2026-06-02');
    const more = writeSupimDay(box.sourceTemplate, next, { bytesPerFile: 2000 });
    const sharedResult = await runActivity(shared.backupSupimDay, next);
    for (const name of more.files) assert.equal(mode(join(sharedResult.destination, name)), 0o640, name);
    assert.equal(mode(join(sharedResult.destination, 'output')), 0o750);
    assert.equal(statSync(join(sharedResult.destination, more.files[0]!)).gid, 0);
  });

  it('writes .eml reports owner-only', async () => {
    const outbox = join(box.root, 'outbox');
    const mailer = new Mailer({ ...box.config.mail, outbox, smtp: undefined });
    const sent = await mailer.deliver({ job: 'daily', ok: true, subject: 's', text: 't', html: '<p>t</p>' }, 'report');
    assert.equal(statSync(sent.where).mode & 0o777, 0o600);
    assert.equal(statSync(outbox).mode & 0o777, 0o700);
  });

  it('refuses a private key file that others can read, saying how to fix it', async () => {
    const exposed = join(box.root, 'exposed_key');
    copyFileSync(box.compute.config.privateKeyFile, exposed);
    chmodSync(exposed, 0o644);
    await assert.rejects(
      SshSession.connect('compute', { ...box.compute.config, privateKeyFile: exposed }),
      (err: unknown) =>
        err instanceof RemoteCommandError &&
        err.nonRetryable === true &&
        /accessible by others \(mode 0644\).*chmod 600/.test(err.message),
    );
    chmodSync(exposed, 0o600);
    const ssh = await SshSession.connect('compute', { ...box.compute.config, privateKeyFile: exposed });
    ssh.close();
  });

  it('refuses an SMTP password file that others can read, before connecting anywhere', async () => {
    const passwordFile = join(box.root, 'smtp-password');
    writeFileSync(passwordFile, 'secret\n');
    chmodSync(passwordFile, 0o640);
    const mailer = new Mailer({
      ...box.config.mail,
      smtp: { host: '127.0.0.1', port: 1, security: 'starttls', user: 'u', passwordFile },
    });
    await assert.rejects(
      mailer.deliver({ job: 'daily', ok: true, subject: 's', text: 't', html: '' }, 'r'),
      // The adapter's own error; the activity edge makes it a non-retryable MailAuthError (see activity-edge.test).
      (err: unknown) =>
        err instanceof AdapterError &&
        err.kind === 'auth' &&
        !err.retryable &&
        err.type === 'MailAuthError' &&
        /mode 0640.*chmod 600/.test(err.message),
    );
  });
});

describe('daily copy: a compute host that accepts the command and never answers (real sshd)', () => {
  let box: SupimSandbox;
  before(async () => {
    box = await supimSandbox({ user: 'cbremote' });
  });
  after(() => box.cleanup());

  it('ends the attempt within transfer.stallSeconds with a retryable error naming host and step', async () => {
    const day = calendarDay('2026-04-06');
    const generated = writeSupimDay(box.sourceTemplate, day, { bytesPerFile: 1000 });
    const quick = activitiesWith(box, { transfer: { stallSeconds: 2 } });
    forceCommand(box.compute, 'sleep 30'); // sshd keeps answering keepalives; the command says nothing
    const started = Date.now();
    const hung = Symbol('still running');
    const outcome = await Promise.race([
      runActivity(quick.backupSupimDay, day).catch((err: unknown) => err),
      new Promise((resolve) => setTimeout(() => resolve(hung), 15_000)),
    ]);
    const seconds = (Date.now() - started) / 1000;
    assert.notEqual(outcome, hung, 'the attempt still ran after 15 s');
    assert.ok(outcome instanceof RemoteCommandError, `failed with ${String(outcome)}`);
    assert.equal(outcome.remote.kind, 'stalled');
    assert.equal(outcome.nonRetryable, false);
    assert.match(
      outcome.message,
      new RegExp(
        `^compute \\(cbremote@.*\\): listing ${generated.folder}: nothing received for 2 s \\(transfer.stallSeconds\\)`,
      ),
    );
    assert.ok(seconds >= 2 && seconds < 6, `ended after ${seconds} s`);

    forceCommand(box.compute); // the host recovers: the retry copies the day (the lock was let go)
    const retried = await runActivity(quick.backupSupimDay, day);
    assert.equal(retried.status, 'copied', retried.reason);
    assert.equal(retried.filesCopied, generated.files.length);
  });

  it('does not count a slow flush of the store (waiting on local disk, not the host) against the stall limit', async () => {
    const day = calendarDay('2026-04-07');
    const generated = writeSupimDay(box.sourceTemplate, day, { bytesPerFile: 1000 });
    let flushes = 0;
    // The store's disk busy behind other writers (an image pull): the real flush, 4 s late.
    const slowFlush = async (path: string) => {
      flushes += 1;
      await new Promise((resolve) => setTimeout(resolve, 4000));
      await syncFileSystem(path);
    };
    const quick = activitiesWith(box, { transfer: { stallSeconds: 2 } }, { flushStore: slowFlush });
    const result = await runActivity(quick.backupSupimDay, day);
    assert.equal(result.status, 'copied', result.reason);
    assert.equal(result.filesCopied, generated.files.length);
    assert.equal(flushes, 1, 'the day was flushed once, slowly');
  });
});
