import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { linkSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { tarEntries, TarFormatError, type TarEntry, type TarReadOptions } from '../../adapters/transfer/tar-entries';

/** The stream cut into small uneven pieces, as a network delivers it. */
function chunked(data: Buffer, size = 777): Readable {
  const pieces: Buffer[] = [];
  for (let at = 0; at < data.length; at += size) pieces.push(data.subarray(at, at + size));
  return Readable.from(pieces);
}

async function read(data: Buffer, options: Partial<TarReadOptions> = {}): Promise<TarEntry[]> {
  const entries: TarEntry[] = [];
  for await (const entry of tarEntries(chunked(data), { maxFileBytes: 1 << 20, ...options })) entries.push(entry);
  return entries;
}

/** A tar header as a hostile host could forge it: any type, any size, checksum right. */
function forgedHeader(name: string, typeflag: string, size: number): Buffer {
  const header = Buffer.alloc(512);
  header.write(name, 0);
  header.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
  header.write('00000000000\0', 136);
  header.write(typeflag, 156);
  header.write('ustar  \0', 257);
  header.fill(0x20, 148, 156);
  const sum = header.reduce((total, b) => total + b, 0);
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return header;
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

  it('refuses a file larger than asked for before reading its data', async () => {
    const archive = execFileSync('tar', ['-C', dir, '--format=gnu', '-cf', '-', './big.dat']);
    const headerOnly = archive.subarray(0, 512 + 100); // the data never comes: it is not waited for
    await assert.rejects(read(headerOnly, { maxFileBytes: 99_999 }), (err: unknown) => {
      assert.ok(err instanceof TarFormatError);
      assert.match(err.message, /"\.\/big\.dat" is 100000 bytes, more than the 99999 asked for/);
      return true;
    });
    assert.equal((await read(archive, { maxFileBytes: 100_000 }))[0]!.size, 100_000);
  });

  for (const [typeflag, what] of [
    ['L', 'long name'],
    ['x', 'pax header'],
  ]) {
    it(`refuses a ${what} over 64 KiB before reading it`, async () => {
      const forged = Buffer.concat([forgedHeader('././@LongLink', typeflag!, 1 << 30), Buffer.alloc(512, 'a')]);
      await assert.rejects(read(forged), (err: unknown) => {
        assert.ok(err instanceof TarFormatError);
        assert.equal(err.message, `a ${what} of ${1 << 30} bytes (more than 65536)`);
        return true;
      });
    });
  }

  it('skips an entry it does not keep without holding its data', async () => {
    const size = 256 << 20;
    let peak = 0;
    async function* stream() {
      yield forgedHeader('./sub/', '5', size);
      for (let sent = 0; sent < size; sent += 1 << 20) {
        peak = Math.max(peak, process.memoryUsage().arrayBuffers);
        yield Buffer.alloc(1 << 20, 1);
      }
      yield Buffer.alloc(1024);
    }
    const before = process.memoryUsage().arrayBuffers;
    const entries: TarEntry[] = [];
    for await (const entry of tarEntries(stream(), { maxFileBytes: 0 })) entries.push(entry);
    assert.deepEqual(
      entries.map((e) => [e.name, e.type, e.data.length]),
      [['./sub/', 'other', 0]],
    );
    assert.ok(peak - before < 64 << 20, `held ${(peak - before) >> 20} MiB of a ${size >> 20} MiB entry`);
  });

  it('hands what follows the archive, after its zero padding, to the trailer as it arrives', async () => {
    const archive = execFileSync('tar', ['-C', dir, '--format=gnu', '-b', '128', '-cf', '-', './big.dat']);
    const files = Array.from({ length: 100 }, (_, i) => ['f', '4', '1', `file-${i}.dat`]);
    const listing = Buffer.from(['1700000000.5', ...files.flat(), ''].join('\0'));
    const received: Buffer[] = [];
    const entries = await read(Buffer.concat([archive, listing]), { trailer: (chunk) => received.push(chunk) });
    assert.equal(entries.length, 1);
    assert.ok(received.length > 1, 'in the chunks it came in, not gathered');
    assert.ok(Buffer.concat(received).equals(listing));
    await assert.rejects(read(Buffer.concat([archive, listing])), /data after the end of the archive/);
    await assert.rejects(
      read(Buffer.concat([archive, Buffer.alloc(2 << 20), listing]), { trailer: () => undefined }),
      /more than 1048576 bytes of padding after the end of the archive/,
    );
  });
});
