import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RateCap } from '../../adapters/transfer/rate-cap';

test('no limit (undefined or 0): never waits', () => {
  assert.equal(new RateCap(undefined).waitFor(10 << 30), 0);
  assert.equal(new RateCap(0).waitFor(10 << 30), 0);
});

test('a limit: waits for the time the bytes take at that rate since the cap was made', () => {
  const cap = new RateCap(1000);
  const wait = cap.waitFor(2000);
  assert.ok(wait > 1900 && wait <= 2000, `waits about 2 s for 2000 bytes at 1000 B/s, got ${wait} ms`);
  assert.equal(cap.waitFor(0), 0);
});

test('hold ends early on an abort', async () => {
  const cap = new RateCap(1);
  const abort = new AbortController();
  const started = Date.now();
  setTimeout(() => abort.abort(), 20);
  await cap.hold(3600, abort.signal); // an hour at 1 B/s
  assert.ok(Date.now() - started < 5000);
});
