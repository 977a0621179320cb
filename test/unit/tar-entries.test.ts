import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { linkSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { tarEntries, TarFormatError, type TarEntry } from '../../adapters/local/tar-entries';

/** The stream cut into small uneven pieces, as a network delivers it. */
function chunked(data: Buffer, size = 777): Readable {
  const pieces: Buffer[] = [];
  for (let at = 0; at < data.length; at += size) pieces.push(data.subarray(at, at + size));
  return Readable.from(pieces);
}

async function read(data: Buffer): Promise<TarEntry[]> {
  const entries: TarEntry[] = [];
  for await (const entry of tarEntries(chunked(data))) entries.push(entry);
  return entries;
}

describe('tar stream reader (archives made by GNU tar)', () => {
  let dir: string;
  const longName = `${'d'.repeat(120)}/${'f'.repeat(250)}.dat`;
  const hostile = ['new\nline.dat', "quo'te.dat", '-dash.dat', 'ünï.dat'];
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'cluster-backup-tar-'));
    mkdirSync(join(dir, 'd'.repeat(120)));
    writeFileSync(join(dir, longName), 'long');
    hostile.forEach((name, i) => writeFileSync(join(dir, name), `hostile ${i}`));
    writeFileSync(join(dir, 'big.dat'), Buffer.alloc(100_000, 3));
    linkSync(join(dir, 'big.dat'), join(dir, 'hardlink.dat'));
    symlinkSync('/etc/passwd', join(dir, 'link'));
    utimesSync(join(dir, 'big.dat'), 1_700_000_000, 1_700_000_000);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const names = () => [longName, ...hostile, 'big.dat', 'hardlink.dat', 'link'].map((n) => `./${n}`);
  const tar = (format: string) =>
    execFileSync(
      'tar',
      ['-C', dir, `--format=${format}`, '--hard-dereference', '--no-recursion', '-cf', '-', '--', ...names()],
      {
        maxBuffer: 64 << 20,
      },
    );

  for (const format of ['gnu', 'posix']) {
    it(`reads names of any length and content, sizes, mtimes and data (${format})`, async () => {
      const entries = await read(tar(format));
      assert.deepEqual(
        entries.map((e) => e.name),
        names(),
      );
      const byName = new Map(entries.map((e) => [e.name.slice(2), e]));
      assert.equal(Buffer.concat(byName.get(longName)!.data).toString(), 'long');
      hostile.forEach((name, i) => assert.equal(Buffer.concat(byName.get(name)!.data).toString(), `hostile ${i}`));
      const big = byName.get('big.dat')!;
      assert.equal(big.size, 100_000);
      assert.equal(Math.floor(big.mtime), 1_700_000_000);
      assert.ok(Buffer.concat(big.data).equals(Buffer.alloc(100_000, 3)));
      assert.equal(byName.get('hardlink.dat')!.type, 'file', 'hard links come as their data');
      assert.equal(byName.get('link')!.type, 'other', 'a symlink is reported, never a file');
      assert.deepEqual(byName.get('link')!.data, []);
    });
  }

  it('refuses a stream cut short and a damaged header', async () => {
    const whole = tar('gnu');
    await assert.rejects(read(whole.subarray(0, 1500)), TarFormatError);
    const damaged = Buffer.from(whole);
    damaged[10] = damaged[10]! ^ 0xff;
    await assert.rejects(read(damaged), /checksum/);
  });
});
