import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseConfig } from '../../config/load';
import {
  connectionSources,
  describeConnection,
  TemporalConnectionError,
  temporalConnection,
} from '../../adapters/temporal/temporal-connection';
import { SecretFileExposedError } from '../../adapters/local/secret-file';

const hosts = {
  compute: { host: '127.0.0.2', port: 2222, user: 'supim', privateKeyFile: 'keys/id', knownHostsFile: '/etc/kh' },
};
const supim = { host: 'compute', sourceTemplate: '/data/{yyyy}/{ddd}', destinationRoot: 'backup' };

/** A folder with CA, client certificate and key, API key files, and a Temporal profile file with two profiles. */
function fixture() {
  const dir = mkdtempSync(join(tmpdir(), 'cb-temporal-'));
  for (const [name, text] of Object.entries({
    'ca.pem': 'CA',
    'client.pem': 'CERT',
    'client.key': 'KEY',
    'api-key': 'key-from-file\n',
    'profile-ca.pem': 'PROFILE-CA',
  })) {
    // The key files as an operator must leave them: readable by the worker's user only.
    writeFileSync(join(dir, name), text, { mode: name.endsWith('.pem') ? 0o644 : 0o600 });
  }
  const profileFile = join(dir, 'temporal.toml');
  writeFileSync(
    profileFile,
    [
      '[profile.default]',
      'address = "profile-default:7233"',
      'namespace = "profile-ns"',
      '',
      '[profile.cluster]',
      'address = "profile-cluster:7233"',
      'namespace = "cluster-ns"',
      'api_key = "key-from-profile"',
      '[profile.cluster.tls]',
      `server_ca_cert_path = "${join(dir, 'profile-ca.pem')}"`,
      '',
    ].join('\n'),
    { mode: 0o600 }, // it holds an api_key
  );
  // No real ~/.config/temporalio of whoever runs the test: every layer comes from here.
  const noProfile = { TEMPORAL_CONFIG_FILE: join(dir, 'absent.toml') };
  const config = (temporal: Record<string, unknown>) => parseConfig({ hosts, supim, temporal }, 'test.yaml', dir);
  return { dir, profileFile, noProfile, config };
}

describe('Temporal connection settings: defaults < Temporal profile < TEMPORAL_* environment < config file', () => {
  it('defaults to a local server without TLS', () => {
    const { config, noProfile } = fixture();
    assert.deepEqual(temporalConnection(config({}), noProfile), { address: '127.0.0.1:7233', namespace: 'default' });
    assert.deepEqual(connectionSources(config({}), noProfile), {
      address: 'default',
      namespace: 'default',
      tls: 'default',
      apiKey: 'default',
    });
  });

  it('takes the Temporal profile (TEMPORAL_CONFIG_FILE, TEMPORAL_PROFILE) when the config file leaves fields out', () => {
    const { config, profileFile } = fixture();
    // The default profile has no TLS: plaintext to profile-default is only taken with allowPlaintext.
    const byDefault = temporalConnection(config({ allowPlaintext: true }), { TEMPORAL_CONFIG_FILE: profileFile });
    assert.equal(byDefault.address, 'profile-default:7233');
    assert.equal(byDefault.namespace, 'profile-ns');
    const cluster = temporalConnection(config({}), { TEMPORAL_CONFIG_FILE: profileFile, TEMPORAL_PROFILE: 'cluster' });
    assert.equal(cluster.address, 'profile-cluster:7233');
    assert.equal(cluster.apiKey, 'key-from-profile');
    const profileCa = (cluster.tls as { serverRootCACertificate?: Uint8Array }).serverRootCACertificate;
    assert.equal(Buffer.from(profileCa ?? []).toString(), 'PROFILE-CA');
    assert.equal(
      connectionSources(config({}), { TEMPORAL_CONFIG_FILE: profileFile, TEMPORAL_PROFILE: 'cluster' }).address,
      'Temporal profile',
    );
    assert.throws(
      () => temporalConnection(config({}), { TEMPORAL_CONFIG_FILE: profileFile, TEMPORAL_PROFILE: 'nope' }),
      /Profile 'nope' not found/,
    );
  });

  it('lets TEMPORAL_* environment variables override the profile', () => {
    const { config, profileFile } = fixture();
    const env = {
      TEMPORAL_CONFIG_FILE: profileFile,
      TEMPORAL_ADDRESS: 'env:7233',
      TEMPORAL_NAMESPACE: 'env-ns',
      TEMPORAL_API_KEY: 'key-from-env',
    };
    const settings = temporalConnection(config({}), env);
    assert.equal(settings.address, 'env:7233');
    assert.equal(settings.namespace, 'env-ns');
    assert.equal(settings.apiKey, 'key-from-env');
    assert.equal(settings.tls, true, 'an API key turns TLS on, as the temporal CLI does');
    assert.equal(connectionSources(config({}), env).address, 'environment');
  });

  it('puts what the config file sets on top of environment and profile, reading TLS and API key from files', () => {
    const { config, profileFile } = fixture();
    const fromFile = config({
      address: 'temporal.cluster:7233',
      namespace: 'backups',
      tls: { caFile: 'ca.pem', certFile: 'client.pem', keyFile: 'client.key', serverName: 'temporal.cluster' },
      apiKeyFile: 'api-key',
    });
    const env = {
      TEMPORAL_CONFIG_FILE: profileFile,
      TEMPORAL_PROFILE: 'cluster',
      TEMPORAL_ADDRESS: 'env:7233',
      TEMPORAL_NAMESPACE: 'env-ns',
      TEMPORAL_API_KEY: 'key-from-env',
    };
    assert.deepEqual(temporalConnection(fromFile, env), {
      address: 'temporal.cluster:7233',
      namespace: 'backups',
      tls: {
        serverRootCACertificate: Buffer.from('CA'),
        clientCertPair: { crt: Buffer.from('CERT'), key: Buffer.from('KEY') },
        serverNameOverride: 'temporal.cluster',
      },
      apiKey: 'key-from-file',
    });
    const sources = connectionSources(fromFile, env);
    assert.deepEqual(sources, {
      address: 'config file',
      namespace: 'config file',
      tls: 'config file',
      apiKey: 'config file',
    });

    // Field by field: the file's address with the environment's namespace.
    const partly = temporalConnection(config({ address: 'temporal.cluster:7233' }), env);
    assert.equal(partly.address, 'temporal.cluster:7233');
    assert.equal(partly.namespace, 'env-ns');
  });

  it('describes the connection without any secret', () => {
    const { config, profileFile } = fixture();
    const c = config({ apiKeyFile: 'api-key', tls: { caFile: 'ca.pem' } });
    const env = { TEMPORAL_CONFIG_FILE: profileFile };
    const line = describeConnection(temporalConnection(c, env), connectionSources(c, env));
    assert.equal(
      line,
      'profile-default:7233 (from Temporal profile), namespace profile-ns (from Temporal profile), TLS + API key',
    );
    assert.doesNotMatch(line, /key-from/);
  });

  it('refuses plaintext to an address that is not loopback unless temporal.allowPlaintext says so', () => {
    const { config, noProfile, profileFile } = fixture();
    const refused = (temporal: Record<string, unknown>, env: NodeJS.ProcessEnv) =>
      assert.throws(
        () => temporalConnection(config(temporal), env),
        (err: unknown) =>
          err instanceof TemporalConnectionError &&
          /plaintext \(no TLS\) to the Temporal address .* is refused/.test(err.message) &&
          /temporal\.tls/.test(err.message) &&
          /temporal\.allowPlaintext: true/.test(err.message),
      );
    refused({ address: 'temporal.cluster:7233' }, noProfile);
    refused({ address: '10.0.0.5:7233' }, noProfile);
    refused({ address: '[2001:db8::1]:7233' }, noProfile);
    refused({}, { ...noProfile, TEMPORAL_ADDRESS: 'temporal.cluster:7233' });
    refused({}, { TEMPORAL_CONFIG_FILE: profileFile }); // the profile's address, no TLS anywhere
    // The profile turns TLS on, the environment turns it off again: plaintext after all.
    refused({}, { TEMPORAL_CONFIG_FILE: profileFile, TEMPORAL_PROFILE: 'cluster', TEMPORAL_TLS: 'false' });
    assert.throws(() => connectionSources(config({ address: 'temporal.cluster:7233' }), noProfile), /is refused/);

    // Loopback, in every spelling, stays plaintext-capable: the dev server and tests.
    for (const address of ['127.0.0.1:7233', '127.0.0.2:7233', 'localhost:7233', '[::1]:7233'])
      assert.equal(temporalConnection(config({ address }), noProfile).address, address);
    // TLS (from the file, the profile, or an API key that turns it on) is what makes a remote address fine.
    const { dir } = fixture();
    const tls = temporalConnection(
      config({ address: 'temporal.cluster:7233', tls: { caFile: join(dir, 'ca.pem') } }),
      noProfile,
    );
    assert.ok(tls.tls);
    assert.equal(
      temporalConnection(config({}), { TEMPORAL_CONFIG_FILE: profileFile, TEMPORAL_PROFILE: 'cluster' }).address,
      'profile-cluster:7233',
    );
    const withKey = temporalConnection(config({ address: 'temporal.cluster:7233', apiKeyFile: 'api-key' }), noProfile);
    assert.equal(
      describeConnection(
        withKey,
        connectionSources(config({ address: 'temporal.cluster:7233', apiKeyFile: 'api-key' }), noProfile),
      ).endsWith('TLS + API key'),
      true,
    );
    // The explicit opt-in.
    const opted = config({ address: 'temporal.cluster:7233', allowPlaintext: true });
    assert.equal(temporalConnection(opted, noProfile).address, 'temporal.cluster:7233');
    assert.match(
      describeConnection(temporalConnection(opted, noProfile), connectionSources(opted, noProfile)),
      /plaintext$/,
    );
    assert.throws(() => config({ allowPlaintext: 'yes' }), /allowPlaintext/);
  });

  it('refuses an API key file or an mTLS key file that others can read, as the SSH key is refused', () => {
    const { config, dir, noProfile } = fixture();
    const local = { address: '127.0.0.1:7233' };
    for (const [file, temporal, what] of [
      ['api-key', { ...local, apiKeyFile: 'api-key' }, /Temporal API key file \(temporal\.apiKeyFile\)/],
      [
        'client.key',
        { ...local, tls: { certFile: 'client.pem', keyFile: 'client.key' } },
        /Temporal mTLS key file \(temporal\.tls\.keyFile\)/,
      ],
    ] as const) {
      const settings = config(temporal);
      assert.ok(temporalConnection(settings, noProfile), `${file} at 0600 is taken`);
      for (const mode of [0o640, 0o604, 0o620]) {
        chmodSync(join(dir, file), mode);
        assert.throws(
          () => temporalConnection(settings, noProfile),
          (err: unknown) =>
            err instanceof SecretFileExposedError &&
            what.test(err.message) &&
            err.message.includes(`${join(dir, file)} is accessible by others (mode 0${mode.toString(8)})`) &&
            err.message.includes(`chmod 600 ${join(dir, file)}`),
        );
      }
      chmodSync(join(dir, file), 0o600);
    }
  });

  it('refuses an mTLS key file that others can read when TEMPORAL_TLS_CLIENT_KEY_PATH or the profile names it', () => {
    const { config, dir, noProfile } = fixture();
    const keyFile = join(dir, 'client.key');
    const profileFile = join(dir, 'mtls.toml');
    writeFileSync(
      profileFile,
      `[profile.default]\naddress = "127.0.0.1:7233"\n[profile.default.tls]\n` +
        `client_cert_path = "${join(dir, 'client.pem')}"\nclient_key_path = "${keyFile}"\n`,
      { mode: 0o644 }, // no secret in it: a profile file may be readable by others
    );
    const fromEnv = {
      ...noProfile,
      TEMPORAL_TLS_CLIENT_CERT_PATH: join(dir, 'client.pem'),
      TEMPORAL_TLS_CLIENT_KEY_PATH: keyFile,
    };
    const fromProfile = { TEMPORAL_CONFIG_FILE: profileFile };
    for (const env of [fromEnv, fromProfile]) {
      const key = (temporalConnection(config({}), env).tls as { clientCertPair?: { key: Uint8Array } }).clientCertPair
        ?.key;
      assert.equal(Buffer.from(key ?? []).toString(), 'KEY', 'a 0600 key is taken');
    }
    chmodSync(keyFile, 0o640);
    for (const [env, namedBy] of [
      [fromEnv, /Temporal mTLS key file \(TEMPORAL_TLS_CLIENT_KEY_PATH\)/],
      [fromProfile, /Temporal mTLS key file \(client_key_path of the Temporal profile in .*mtls\.toml\)/],
    ] as const) {
      assert.throws(
        () => temporalConnection(config({}), env),
        (err: unknown) =>
          err instanceof SecretFileExposedError &&
          namedBy.test(err.message) &&
          err.message.includes(`${keyFile} is accessible by others (mode 0640)`),
      );
    }
    // The config file's own tls replaces the profile's as a whole: the profile's key file is not read then.
    assert.ok(temporalConnection(config({ tls: { caFile: 'ca.pem' } }), fromEnv).tls);
  });

  it('refuses a Temporal profile file that others can read when it holds an api_key or client_key_data', () => {
    const { config, profileFile } = fixture();
    const env = { TEMPORAL_CONFIG_FILE: profileFile, TEMPORAL_PROFILE: 'cluster' };
    chmodSync(profileFile, 0o600);
    assert.equal(temporalConnection(config({}), env).apiKey, 'key-from-profile');
    for (const mode of [0o644, 0o640]) {
      chmodSync(profileFile, mode);
      assert.throws(
        () => temporalConnection(config({}), env),
        (err: unknown) =>
          err instanceof SecretFileExposedError &&
          err.message.includes(`Temporal profile file (holding api_key or client_key_data) ${profileFile}`) &&
          err.message.includes(`chmod 600 ${profileFile}`),
      );
    }
    // The same file without secrets may be read by others: addresses and namespaces are no secret.
    const { dir } = fixture();
    const plain = join(dir, 'plain.toml');
    writeFileSync(plain, '[profile.default]\naddress = "127.0.0.1:7233"\nnamespace = "ns"\n', { mode: 0o644 });
    assert.equal(temporalConnection(config({}), { TEMPORAL_CONFIG_FILE: plain }).namespace, 'ns');
    const keyData = join(dir, 'key-data.toml');
    writeFileSync(keyData, '[profile.other.tls]\nclient_key_data = "KEY"\n', { mode: 0o604 });
    assert.throws(() => temporalConnection(config({}), { TEMPORAL_CONFIG_FILE: keyData }), SecretFileExposedError);
  });
});
