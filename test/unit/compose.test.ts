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
    assert.ok(compose.services.temporal!.ports?.includes('7233:7233'));
    assert.ok(compose.volumes && Object.keys(compose.volumes).length > 0);
  });
});
