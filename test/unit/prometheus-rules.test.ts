import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import { noopMetricMeter, type MetricMeter } from '@temporalio/common';
import { BackupMetrics } from '../../adapters/metrics/backup-metrics';
import { PROJECT_ROOT } from '../../scripts/sandbox/paths';

const run = promisify(execFile);
const RULES = join(PROJECT_ROOT, 'deploy', 'prometheus-rules.yml');

describe('Prometheus alert rules (deploy/prometheus-rules.yml)', () => {
  it('pass `promtool check rules`', async () => {
    const { stdout } = await run('promtool', ['check', 'rules', RULES]);
    assert.match(stdout, /SUCCESS: 8 rules found/);
  });

  it('fire when they should and only then (`promtool test rules` on prometheus-rules.test.yml)', async () => {
    const { stdout } = await run('promtool', [
      'test',
      'rules',
      join(PROJECT_ROOT, 'deploy', 'prometheus-rules.test.yml'),
    ]);
    assert.match(stdout, /SUCCESS/);
  });

  it('name only metrics the worker serves', () => {
    const created: string[] = [];
    const recording: MetricMeter = Object.assign(Object.create(noopMetricMeter) as MetricMeter, {
      createGauge: (name: string) => {
        created.push(name);
        return noopMetricMeter.createGauge(name);
      },
    });
    new BackupMetrics(recording);
    const used = new Set(readFileSync(RULES, 'utf8').match(/cluster_backup_\w+/g));
    assert.ok(used.size >= 6);
    for (const name of used) assert.ok(created.includes(name), `${name} is served`);
  });
});
