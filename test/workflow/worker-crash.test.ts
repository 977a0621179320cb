import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { DayCopyProgress } from '../../adapters/transfer/day-copy-rules';
import type { Config } from '../../config/schema';
import { calendarDay } from '../../domain/julian-day';
import { connectClient } from '../../scripts/commands/temporal-client';
import { startDaily } from '../../scripts/commands/run-daily';
import { stopProcess } from '../../scripts/sandbox/processes';
import { writeSupimDay } from '../../scripts/sandbox/supim-data';
import type { DevServer } from '../../scripts/sandbox/temporal-dev-server';
import { supimSandbox, type SupimSandbox } from '../helpers/sandbox';
import { testDevServer } from '../helpers/temporal';
import { spawnWorker, waitForHeartbeat, writeConfigFile } from '../helpers/worker-process';

async function sha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

const BIG = 64 * 1024 * 1024;

describe('worker killed with SIGKILL in the middle of a large copy', () => {
  let server: DevServer;
  let box: SupimSandbox;
  let configFile: string;
  let config: Config;
  const workers: ChildProcess[] = [];

  before(async () => {
    [server, box] = await Promise.all([testDevServer(), supimSandbox()]);
    config = {
      ...box.config,
      temporal: { address: server.address, namespace: 'default', taskQueue: 'crash-test' },
      // A bandwidth cap so the kill lands mid-file; a short heartbeat timeout so the retry comes quickly.
      transfer: { ...box.config.transfer, maxBytesPerSecond: 12 << 20, heartbeatTimeoutSeconds: 4 },
    };
    configFile = writeConfigFile(box.root, config);
  });
  after(async () => {
    await Promise.all(workers.map((w) => stopProcess(w)));
    await Promise.all([server.stop(), box.cleanup()]);
  });

  it('resumes on a new worker: every file byte-identical, no partial file left, the copied prefix not fetched again', async () => {
    const day = calendarDay('2026-05-10');
    const generated = writeSupimDay(box.sourceTemplate, day, { bytesPerFile: 20_000 });
    const big = join(generated.folder, 'output', 'big_field.dat');
    const block = Buffer.alloc(1024 * 1024);
    writeFileSync(big, '');
    for (let i = 0; i < BIG / block.length; i++) {
      block.fill(i % 251);
      block.writeUInt32LE(i, 0);
      writeFileSync(big, block, { flag: 'a' });
    }
    utimesSync(big, 1_700_000_000, 1_700_000_000);

    workers.push(spawnWorker(configFile, join(box.root, 'worker-1.log')));
    const { client, close } = await connectClient(config);
    try {
      const handle = await startDaily(client, config, day.isoDate);
      const seen = await waitForHeartbeat<DayCopyProgress>(
        handle,
        (p) => p.phase === 'copying' && p.inFlight.some((f) => f.path === 'output/big_field.dat' && f.offset > 8 << 20),
      );
      workers[0]!.kill('SIGKILL');
      const resumedFrom = seen.inFlight.find((f) => f.path === 'output/big_field.dat')!.offset;

      workers.push(spawnWorker(configFile, join(box.root, 'worker-2.log')));
      const summary = await handle.result();
      const result = summary.days[0]!;
      assert.equal(result.status, 'copied', result.reason);
      for (const name of [...generated.files, 'output/big_field.dat']) {
        assert.equal(await sha256(join(result.destination, name)), await sha256(join(generated.folder, name)), name);
      }
      const leftovers = readdirSync(result.destination, { recursive: true }).filter((n) =>
        String(n).endsWith('partial'),
      );
      assert.deepEqual(leftovers, []);
      // The last attempt fetched the big file from where the killed one had got to, not from byte 0.
      const bigRemainder = BIG - resumedFrom;
      assert.ok(
        result.bytesCopied <= bigRemainder + generated.bytes,
        `copied ${result.bytesCopied} bytes, resumed at ${resumedFrom}`,
      );
    } finally {
      await close();
    }
  });
});
