import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { createDayRestoreActivities } from '../../activities/restore-day';
import { RemoteCommandError } from '../../adapters/ssh/remote-command-error';
import { SshSession } from '../../adapters/ssh/ssh-session';
import type { Config } from '../../config/schema';
import type { DayRestoreRequest } from '../../domain/restore';
import { runActivity, supimSandbox, type SupimSandbox } from '../helpers/sandbox';

const DAY = '2026-331';
const mode = (path: string) => (statSync(path).mode & 0o777).toString(8);

describe('restore day over real sshd: only into the host`s restore roots, never through a symlink', () => {
  let sandbox: SupimSandbox;
  let restore: (request: DayRestoreRequest) => Promise<unknown>;
  let sourceRoot: string;
  let other: string;
  let fresh: string;

  before(async () => {
    sandbox = await supimSandbox();
    sourceRoot = join(sandbox.root, 'source');
    other = join(sandbox.root, 'other');
    fresh = join(sandbox.root, 'not', 'yet');
    mkdirSync(sourceRoot);
    mkdirSync(other);
    const backup = join(sandbox.destinationRoot, '2026', '331');
    mkdirSync(join(backup, 'sub'), { recursive: true });
    writeFileSync(join(backup, 'a.dat'), 'day 331\n');
    writeFileSync(join(backup, 'sub', 'evil'), 'restored data\n');
    // The same sshd under two more keys: one with no restore roots (as a hypervisor), one with its own.
    const compute = sandbox.config.hosts.compute!;
    const config: Config = {
      ...sandbox.config,
      hosts: {
        compute,
        hypervisor: compute,
        archive: { ...compute, restoreRoots: [`${other}/`] },
        spare: { ...compute, restoreRoots: [fresh] },
      },
    };
    const { restoreSupimDay } = createDayRestoreActivities({
      config,
      openSsh: (key) => SshSession.connect(key, config.hosts[key]!),
    });
    restore = (request) => runActivity(restoreSupimDay, request);
  });
  after(() => sandbox.cleanup());

  const refusedBecause = (pattern: RegExp) => (err: unknown) =>
    err instanceof ApplicationFailure && err.type === 'NotAllowed' && err.nonRetryable && pattern.test(err.message);

  it('to the day`s source folder by default (below the template`s fixed part): files 0600, folders 0700', async () => {
    await restore({ day: DAY });
    const to = join(sourceRoot, '2026', '331');
    assert.equal(readFileSync(join(to, 'sub', 'evil'), 'utf8'), 'restored data\n');
    assert.deepEqual(
      [join(sourceRoot, '2026'), to, join(to, 'sub'), join(to, 'a.dat'), join(to, 'sub', 'evil')].map(mode),
      ['700', '700', '700', '600', '600'],
    );
  });

  it('a symlinked sub-folder in the target is refused and nothing is written outside', async () => {
    const to = join(sourceRoot, 'linked');
    const outside = join(sandbox.root, 'outside');
    mkdirSync(to);
    mkdirSync(outside);
    symlinkSync(outside, join(to, 'sub'));
    await assert.rejects(
      restore({ day: DAY, to }),
      (err: unknown) => err instanceof RemoteCommandError && err.nonRetryable && /sub is a symlink/.test(err.message),
    );
    assert.deepEqual(readdirSync(outside), []);
    // A symlink between the restore root and the target is refused the same way.
    symlinkSync(outside, join(sourceRoot, 'hop'));
    await assert.rejects(restore({ day: DAY, to: join(sourceRoot, 'hop', 'day') }), /hop is a symlink/);
    assert.deepEqual(readdirSync(outside), []);
  });

  it('a host without restore roots is refused, naming the field to set', async () => {
    await assert.rejects(
      restore({ day: DAY, host: 'hypervisor', to: join(sourceRoot, 'x') }),
      refusedBecause(/on hypervisor: the host has no restore roots \(hosts\.hypervisor\.restoreRoots\)/),
    );
  });

  it('a path outside the roots is refused, `..` included; a configured root is honoured', async () => {
    await assert.rejects(restore({ day: DAY, to: other }), refusedBecause(/outside its restore roots/));
    await assert.rejects(
      restore({ day: DAY, to: `${sourceRoot}/../other/x` }),
      refusedBecause(new RegExp(`restore to ${join(sandbox.root, 'other', 'x')} on compute: .*outside`)),
    );
    await assert.rejects(restore({ day: DAY, to: `${sourceRoot}-not` }), refusedBecause(/outside/));
    await assert.rejects(
      restore({ day: DAY, host: 'archive', to: sourceRoot }),
      refusedBecause(new RegExp(`outside its restore roots ${other} \\(hosts\\.archive\\.restoreRoots\\)`)),
    );
    await restore({ day: DAY, host: 'archive', to: join(other, 'day') });
    assert.equal(readFileSync(join(other, 'day', 'a.dat'), 'utf8'), 'day 331\n');
  });

  it('a host file `<name>.partial` survives restoring `<name>`; the partial folder is gone at the end', async () => {
    const to = join(sourceRoot, 'beside');
    mkdirSync(to);
    writeFileSync(join(to, 'a.dat.partial'), 'a real host file\n');
    await restore({ day: DAY, to });
    assert.equal(readFileSync(join(to, 'a.dat'), 'utf8'), 'day 331\n');
    assert.equal(readFileSync(join(to, 'a.dat.partial'), 'utf8'), 'a real host file\n');
    assert.ok(!existsSync(join(sourceRoot, '.cluster-backup-restore')));
  });

  it('a configured restore root that does not exist yet is created (0700) and restored into', async () => {
    await restore({ day: DAY, host: 'spare', to: join(fresh, 'day') });
    assert.equal(readFileSync(join(fresh, 'day', 'sub', 'evil'), 'utf8'), 'restored data\n');
    assert.deepEqual([join(sandbox.root, 'not'), fresh].map(mode), ['700', '700']);
  });
});
