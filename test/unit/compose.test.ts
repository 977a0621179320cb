import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';

interface Service {
  image?: string;
  healthcheck?: { test?: unknown };
  depends_on?: Record<string, { condition?: string }>;
  ports?: string[];
}

// No Docker engine runs on the development machines: the file is checked for shape, not started.
describe('docker-compose.temporal.yml', () => {
  const compose = parse(readFileSync(join(__dirname, '..', '..', '..', 'docker-compose.temporal.yml'), 'utf8')) as {
    services: Record<string, Service>;
    volumes?: Record<string, unknown>;
  };

  it('runs Temporal on PostgreSQL with the Web UI, images pinned, health-checked, data on a volume', () => {
    assert.deepEqual(Object.keys(compose.services).sort(), ['postgresql', 'temporal', 'temporal-ui']);
    for (const [name, service] of Object.entries(compose.services)) {
      assert.match(service.image ?? '', /^[\w./-]+:\d[\w.-]*$/, `${name}: image pinned to a version`);
      if (name !== 'temporal-ui') assert.ok(service.healthcheck?.test, `${name}: health check`);
    }
    assert.equal(compose.services.temporal!.depends_on?.postgresql?.condition, 'service_healthy');
    assert.ok(compose.volumes && Object.keys(compose.volumes).length > 0);
  });

  it('publishes the frontend and the Web UI on loopback only, and nothing else', () => {
    // Whoever reaches 7233 (or the Web UI) can terminate runs: nothing listens beyond this host by default.
    const published = Object.entries(compose.services).flatMap(([name, s]) => (s.ports ?? []).map((p) => [name, p]));
    assert.deepEqual(published, [
      ['temporal', '127.0.0.1:7233:7233'],
      ['temporal-ui', '127.0.0.1:8080:8080'],
    ]);
    for (const [name, port] of published) assert.match(port!, /^127\.0\.0\.1:\d+:\d+$/, `${name}: ${port}`);
  });
});
