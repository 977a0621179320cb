import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig, parseConfig } from '../../config/load';

const valid = () => ({
  hosts: {
    compute: { host: '127.0.0.2', port: 2222, user: 'supim', privateKeyFile: 'keys/id', knownHostsFile: '/etc/kh' },
  },
  supim: { host: 'compute', sourceTemplate: '/data/{yyyy}/{ddd}', destinationRoot: 'backup' },
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

describe('config', () => {
  it('fills defaults and resolves relative paths against the config file', () => {
    const config = parseConfig(valid(), 'test.yaml', '/srv/cb');
    assert.equal(config.supim!.daysBack, 2);
    assert.equal(config.supim!.timeZone, 'America/Sao_Paulo');
    assert.equal(config.temporal.taskQueue, 'cluster-backup');
    assert.equal(config.hosts.compute!.privateKeyFile, '/srv/cb/keys/id');
    assert.equal(config.supim!.destinationRoot, '/srv/cb/backup');
    assert.equal(config.transfer.chunkBytes, 261120);
  });

  it('resolves only the fields that are local paths, not any key that happens to be called root or outbox', () => {
    const config = parseConfig(
      { ...valid(), store: { root: 'store' }, mail: { outbox: 'out', recipients: { daily: [] } } },
      'test.yaml',
      '/srv/cb',
    );
    assert.equal(config.store!.root, '/srv/cb/store');
    assert.equal(config.mail.outbox, '/srv/cb/out');
    // A relative path on a remote host is refused (it has no meaning there), never made local.
    assert.match(
      problems({ ...valid(), hypervisor: { host: 'compute', imageArea: 'images' } }).join(),
      /^hypervisor\.imageArea/,
    );
    // Hidden names are the product's own records in the image area and the store.
    assert.match(
      problems({ ...valid(), hypervisor: { host: 'compute', imageArea: '/img', vms: ['.cluster-backup'] } }).join(),
      /^hypervisor\.vms\.0: VM name starts with "\."/,
    );
  });

  it('restore roots: absolute paths on the host, no .. segments, each problem named by its field', () => {
    const withRoots = (restoreRoots: string[]) => {
      const raw = valid();
      (raw.hosts.compute as Record<string, unknown>).restoreRoots = restoreRoots;
      return raw;
    };
    const config = parseConfig(withRoots(['/data/supim']), 'test.yaml', '/srv/cb');
    assert.deepEqual(config.hosts.compute!.restoreRoots, ['/data/supim']);
    assert.equal(parseConfig(valid(), 'test.yaml', '/srv/cb').hosts.compute!.restoreRoots, undefined);
    assert.deepEqual(problems(withRoots(['data', '/data/../etc'])), [
      'hosts.compute.restoreRoots.0: must be an absolute path (relative paths are resolved against the config file)',
      'hosts.compute.restoreRoots.1: must not contain .. segments',
    ]);
  });

  it('names the field and what is wrong with it', () => {
    const raw = valid();
    (raw.hosts.compute as Record<string, unknown>).port = 70000;
    assert.deepEqual(problems(raw), ['hosts.compute.port: Too big: expected number to be <=65535']);
    assert.match(
      problems({ ...valid(), supim: { ...valid().supim, timeZone: 'Mars/Olympus' } }).join(),
      /^supim\.timeZone: .*IANA/,
    );
    assert.match(problems({ ...valid(), supim: { ...valid().supim, daysBack: -1 } }).join(), /^supim\.daysBack/);
    assert.match(
      problems({ ...valid(), supim: { ...valid().supim, sourceTemplate: '/data/{yyyy}' } }).join(),
      /^supim\.sourceTemplate: must contain \{ddd\}/,
    );
    assert.match(
      problems({ ...valid(), supim: { ...valid().supim, host: 'nas' } }).join(),
      /^supim\.host: names no entry of hosts/,
    );
    assert.match(
      problems({ ...valid(), supim: { ...valid().supim, destinaton: '/x' } }).join(),
      /supim: Unrecognized key: "destinaton"/,
    );
    assert.match(problems({ hosts: valid().hosts }).join(), /nothing to back up/);
    assert.match(
      problems({ ...valid(), hypervisor: { host: 'compute', imageArea: '/img', vms: ['ok', '../etc'] } }).join(),
      /^hypervisor\.vms\.1: VM name contains "\/"/,
    );
    assert.match(
      problems({
        ...valid(),
        hypervisor: { host: 'compute', imageArea: '/img', perVm: { db: { imaging: 'snapshot' } } },
      }).join(),
      /^hypervisor\.perVm\.db\.imaging: Invalid option: expected one of "offline"\|"overlay"/,
    );
    assert.match(
      problems({ ...valid(), store: { root: '/b', transport: 'sftp', compression: 'zstd' } }).join(),
      /^store\.compression: compression travels as a stream/,
    );
  });

  it('refuses host and user names that could be taken as options', () => {
    const raw = valid();
    raw.hosts.compute.host = '-oProxyCommand=evil';
    raw.hosts.compute.user = 'bad user';
    const found = problems(raw);
    assert.ok(found.some((p) => p.startsWith('hosts.compute.host:')));
    assert.ok(found.some((p) => p.startsWith('hosts.compute.user:')));
  });

  it('reports unreadable and unparsable files with their path', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cb-config-'));
    assert.throws(() => loadConfig(join(dir, 'missing.yaml')), /missing\.yaml[\s\S]*cannot read/);
    writeFileSync(join(dir, 'bad.yaml'), 'supim: [unclosed');
    assert.throws(() => loadConfig(join(dir, 'bad.yaml')), /not valid YAML/);
    writeFileSync(join(dir, 'ok.yaml'), JSON.stringify(valid()));
    assert.equal(loadConfig(join(dir, 'ok.yaml')).supim!.destinationRoot, join(dir, 'backup'));
  });
});

describe('several hypervisors', () => {
  const base = (extra: Record<string, unknown>) => ({
    hosts: {
      a: { host: '127.0.0.30', user: 'backup', privateKeyFile: '/k', knownHostsFile: '/kh' },
      b: { host: '127.0.0.31', user: 'backup', privateKeyFile: '/k', knownHostsFile: '/kh' },
    },
    mail: { outbox: '/out' },
    ...extra,
  });

  it('loads the single hypervisor section as a list of one named after its host', () => {
    const config = parseConfig(base({ hypervisor: { host: 'a', imageArea: '/img' } }), 't', '/');
    assert.deepEqual(
      config.hypervisors.map((h) => [h.name, h.host, h.hypervisorOutageSeconds]),
      [['a', 'a', 600]],
    );
  });

  it('takes a list, each with its own settings', () => {
    const config = parseConfig(
      base({
        hypervisors: [
          { name: 'hv1', host: 'a', imageArea: '/img', concurrency: 2 },
          { name: 'hv2', host: 'b', imageArea: '/img2', vms: ['db'] },
        ],
      }),
      't',
      '/',
    );
    assert.deepEqual(
      config.hypervisors.map((h) => [h.name, h.concurrency, h.vms]),
      [
        ['hv1', 2, 'all-running'],
        ['hv2', 1, ['db']],
      ],
    );
  });

  it('names the field of a wrong list: unknown host, a name twice, both forms, a bad name, a VM on two hosts', () => {
    const problems = (raw: Record<string, unknown>) => {
      try {
        parseConfig(base(raw), 't', '/');
      } catch (err) {
        return (err as ConfigError).problems.join('\n');
      }
      return 'accepted';
    };
    assert.match(
      problems({ hypervisors: [{ name: 'hv1', host: 'c', imageArea: '/img' }] }),
      /hypervisors\.0\.host: names no entry of hosts/,
    );
    assert.match(
      problems({
        hypervisors: [
          { name: 'hv1', host: 'a', imageArea: '/img' },
          { name: 'hv1', host: 'b', imageArea: '/img' },
        ],
      }),
      /hypervisors\.1\.name: hv1 is named twice/,
    );
    assert.match(
      problems({
        hypervisor: { host: 'a', imageArea: '/img' },
        hypervisors: [{ name: 'hv1', host: 'a', imageArea: '/img' }],
      }),
      /hypervisor: give either hypervisor/,
    );
    assert.match(
      problems({ hypervisors: [{ name: 'hv/1', host: 'a', imageArea: '/img' }] }),
      /hypervisors\.0\.name: hypervisor names are letters/,
    );
    assert.match(
      problems({
        hypervisors: [
          { name: 'hv1', host: 'a', imageArea: '/img', vms: ['web', 'db'] },
          { name: 'hv2', host: 'b', imageArea: '/img', vms: ['mail', 'db'] },
        ],
      }),
      /hypervisors\.1\.vms\.1: db is also listed on hypervisor hv1: VM names must differ across hypervisors/,
    );
    assert.match(
      problems({ hypervisors: [{ name: 'hv1', host: 'a', imageArea: '/img', perVm: { db: { streamWhileDown: true } } }] }),
      /hypervisors\.0\.perVm\.db\.streamWhileDown: streams the disks into a restic repository: it needs store\.engine: restic/,
    );
    assert.match(
      problems({ hypervisor: { host: 'a', imageArea: '/img', imaging: 'offline', streamWhileDown: true } }),
      /hypervisor\.streamWhileDown: streams the disks/,
    );
  });
});

describe('the example config', () => {
  it('is valid, so the documentation cannot drift from the schema', () => {
    const config = loadConfig(join(__dirname, '..', '..', '..', 'config', 'cluster-backup.example.yaml'));
    const [hv] = config.hypervisors;
    assert.equal(hv?.vms, 'all-running');
    assert.equal(hv?.perVm['legacy-windows']?.shutdownTimeoutSeconds, 600);
    assert.equal(hv?.imaging, 'overlay');
    assert.equal(hv?.perVm.appliance?.imaging, 'offline');
    assert.equal(config.supim?.daysBack, 2);
  });
});
