import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, parseConfig } from '../../config/load';
import { copyArgs, parseCopyOutput, restEndpoint } from '../../adapters/restic/offsite';
import { classifyResticStderr } from '../../adapters/restic/restic-errors';
import { dailyOffsiteRequest, weeklyOffsiteRequest } from '../../domain/offsite';

const base = (offsite: unknown, engine: 'restic' | 'files' = 'restic') => ({
  hosts: {
    compute: { host: '127.0.0.2', user: 'supim', privateKeyFile: '/k/id', knownHostsFile: '/k/kh' },
  },
  supim: { host: 'compute', sourceTemplate: '/data/{yyyy}/{ddd}', destinationRoot: '/b' },
  store: { root: '/s', engine, ...(engine === 'restic' ? { restic: { passwordFile: '/s/key' } } : {}) },
  transfer: { maxBytesPerSecond: 2048 },
  offsite,
});

function problems(raw: unknown): string[] {
  try {
    parseConfig(raw, 'test.yaml', '/srv/cb');
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err.problems;
  }
  assert.fail('config was accepted');
}

describe('offsite config', () => {
  it('takes named REST and SFTP repositories, with defaults and relative password files resolved', () => {
    const config = parseConfig(
      base({
        far: { repository: 'rest:http://127.0.0.20:8000/', passwordFile: 'far.key', maxBytesPerSecond: 1 << 20 },
        tape: { repository: 'sftp:backup@vault:/srv/restic', passwordFile: '/etc/cb/tape.key' },
      }),
      'test.yaml',
      '/srv/cb',
    );
    assert.equal(config.offsite.far!.passwordFile, '/srv/cb/far.key');
    assert.equal(config.offsite.far!.maxAgeHours, 24 * 8);
    assert.equal(config.offsite.tape!.maxBytesPerSecond, undefined);
    assert.equal(config.offsite.tape!.verifySubsets, 12);
    assert.deepEqual(parseConfig(base(undefined), 'test.yaml', '/srv/cb').offsite, {});
  });

  it('names the field of each mistake', () => {
    const bad = problems(
      base({
        a: { repository: '/local/path', passwordFile: '/k' },
        b: { repository: 'rest:http://user:secret@host:8000/', passwordFile: '/k' },
        c: { repository: 'rest:http://h/', passwordFile: '/k', maxAgeHours: -1, extra: 1 },
        d: { repository: 'sftp:-oProxyCommand=x', passwordFile: '/k' },
      }),
    );
    assert.ok(
      bad.some((p) => /^offsite\.a\.repository: must be a restic REST URL/.test(p)),
      bad.join('\n'),
    );
    assert.ok(
      bad.some((p) => /^offsite\.b\.repository: must not hold a password/.test(p)),
      bad.join('\n'),
    );
    assert.ok(
      bad.some((p) => /^offsite\.c\.maxAgeHours/.test(p)),
      bad.join('\n'),
    );
    assert.ok(
      bad.some((p) => /^offsite\.c: .*extra/.test(p)),
      bad.join('\n'),
    );
    assert.ok(
      bad.some((p) => /^offsite\.d\.repository/.test(p)),
      bad.join('\n'),
    );
    assert.ok(!bad.some((p) => /secret/.test(p)), 'the password in the URL is not repeated');
    const missing = problems(base({ e: { repository: 'rest:http://h/' } }));
    assert.ok(
      missing.some((p) => /^offsite\.e\.passwordFile/.test(p)),
      missing.join('\n'),
    );
    const files = problems(base({ f: { repository: 'rest:http://h/', passwordFile: '/k' } }, 'files'));
    assert.ok(
      files.some((p) => /^offsite: .*store\.engine: restic/.test(p)),
      files.join('\n'),
    );
  });
});

describe('restic copy arguments and output', () => {
  it('ANDs tags within a group, ORs groups, caps uploads in KiB/s, refuses copying everything', () => {
    assert.deepEqual(
      copyArgs({
        tagGroups: [
          ['vm=a', 'set=S'],
          ['vm=b', 'set=S'],
        ],
        maxBytesPerSecond: 1 << 20,
      }),
      ['copy', '--limit-upload', '1024', '--tag', 'vm=a,set=S', '--tag', 'vm=b,set=S'],
    );
    assert.deepEqual(copyArgs({ snapshotIds: ['0123abcd'] }), ['copy', '--', '0123abcd']);
    assert.throws(() => copyArgs({ tagGroups: [] }), /would copy everything/);
    assert.throws(() => copyArgs({ tagGroups: [['a,b']] }), /comma/);
    assert.throws(() => copyArgs({ snapshotIds: ['--rm'] }), /not a hex snapshot id/);
  });

  it('reads what restic 0.14 copy printed', () => {
    const out = [
      '',
      'snapshot 7fa5f50b of [/d.raw] at 2026-12-07 13:21:43 +0000 UTC)',
      'skipping source snapshot 7fa5f50b, was already copied to snapshot 2bc5e796',
      'snapshot 987f7f22 of [/d2.raw] at 2026-12-07 13:22:57 +0000 UTC)',
      '  copy started, this may take a while...',
      '[0:00] 33.33%  1 / 3 packs copied',
      '[0:01] 100.00%  3 / 3 packs copied',
      '',
      'snapshot d31782ef saved',
    ].join('\n');
    assert.deepEqual(parseCopyOutput(out), {
      packsCopied: 3,
      packsTotal: 3,
      saved: 1,
      skipped: 1,
      savedIds: ['d31782ef'],
    });
  });

  it('finds the REST endpoint to watch, and tells a dead server from a missing repository', () => {
    assert.deepEqual(restEndpoint('rest:http://127.0.0.20:8000/'), { host: '127.0.0.20', port: 8000 });
    assert.deepEqual(restEndpoint('rest:https://vault.example/repo'), { host: 'vault.example', port: 443 });
    assert.equal(restEndpoint('sftp:u@h:/p'), undefined);
    const refused =
      'Fatal: unable to open config file: client.Head: Head "http://127.0.0.20:18499/config": dial tcp 127.0.0.20:18499: connect: connection refused\nIs there a repository at the following location?';
    assert.equal(classifyResticStderr(refused), 'unreachable');
    assert.equal(
      classifyResticStderr(
        'Fatal: unable to open config file: Stat: stat /r/config: no such file or directory\nIs there a repository at the following location?',
      ),
      'no-repository',
    );
  });

  it("asks for a weekly run's sets and a daily run's days by their tags", () => {
    assert.deepEqual(weeklyOffsiteRequest('20261206T050000Z', ['a', 'b']).tagGroups, [
      ['vm=a', 'set=20261206T050000Z'],
      ['vm=b', 'set=20261206T050000Z'],
    ]);
    assert.deepEqual(dailyOffsiteRequest(['2026-340']).tagGroups, [['day=2026-340']]);
  });
});
