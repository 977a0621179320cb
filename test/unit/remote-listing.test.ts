import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  MAX_LISTED_ENTRIES,
  parseTreeListing,
  TreeListingParser,
  unsafeRelativePathReason,
} from '../../adapters/ssh/remote-tree';
import { RemoteCommandError } from '../../adapters/ssh/remote-command-error';

const listing = (...entries: string[][]) => Buffer.from(['1700000000.5', ...entries.flat()].join('\0') + '\0');

describe('remote tree listing', () => {
  it('parses NUL-separated entries, names with newlines included', () => {
    const parsed = parseTreeListing(
      listing(['f', '12', '1699999999.25', 'a\nb.dat'], ['d', '4096', '1699999999', 'sub'], ['l', '4', '1', 'link']),
      'h',
      '/d',
    );
    assert.equal(parsed.remoteNow, 1700000000.5);
    assert.deepEqual(parsed.entries, [
      { type: 'file', path: 'a\nb.dat', size: 12, mtime: 1699999999.25 },
      { type: 'dir', path: 'sub', size: 4096, mtime: 1699999999 },
      { type: 'symlink', path: 'link', size: 4, mtime: 1 },
    ]);
  });

  for (const hostile of ['../etc/passwd', 'a/../../b', '/etc/passwd', 'a//b', './a', '']) {
    it(`refuses the whole listing when it holds ${JSON.stringify(hostile)}`, () => {
      assert.throws(
        () => parseTreeListing(listing(['f', '1', '1', 'ok.dat'], ['f', '1', '1', hostile]), 'h', '/d'),
        (err: unknown) =>
          err instanceof RemoteCommandError && err.nonRetryable === true && /refusing listing/.test(err.message),
      );
    });
  }

  it('allows names that merely contain dots', () => {
    assert.equal(unsafeRelativePathReason('..hidden/a..b/.x'), undefined);
  });

  it('refuses malformed output', () => {
    assert.throws(() => parseTreeListing(Buffer.from('1700000000\0f\0'), 'h', '/d'), /malformed/);
    assert.throws(() => parseTreeListing(Buffer.from('not-a-clock\0'), 'h', '/d'), /clock/);
  });

  it('parses a listing the same however its chunks split it (inside fields, characters and NULs)', () => {
    const whole = listing(['f', '12', '1699999999.25', 'ünï/数据.dat'], ['d', '4096', '1', 'sub']);
    for (let size = 1; size <= 7; size++) {
      const parser = new TreeListingParser('h', '/d');
      for (let i = 0; i < whole.length; i += size) parser.push(whole.subarray(i, i + size));
      assert.deepEqual(parser.end(), parseTreeListing(whole, 'h', '/d'), `chunks of ${size}`);
    }
  });

  it('refuses a field longer than a path can be before it has seen its end', () => {
    const parser = new TreeListingParser('h', '/d').push(Buffer.from('1700000000\0f\0'));
    assert.throws(
      () => parser.push(Buffer.alloc(4097, 'y')),
      /h: refusing listing of \/d: a field longer than 4096 bytes/,
    );
  });

  it('refuses a listing of more than 64 MiB of paths, long before its entry limit', () => {
    const parser = new TreeListingParser('h', '/d').push(Buffer.from('1700000000\0'));
    const entry = Buffer.from(['f', '1', '1', 'p'.repeat(4000), ''].join('\0')); // 500k such would be 2 GB
    let pushed = 0;
    assert.throws(
      () => {
        for (; pushed < MAX_LISTED_ENTRIES; pushed++) parser.push(entry);
      },
      (err: unknown) =>
        err instanceof RemoteCommandError &&
        err.nonRetryable === true &&
        err.message === 'h: refusing listing of /d: more than 64 MiB of listing (the most kept in memory)',
    );
    assert.ok(pushed > 16_000 && pushed < 17_000, `refused after ${pushed} entries of 4 KB`);
  });
});
