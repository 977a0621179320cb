import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { hashFile } from '../../adapters/local/hash-file';
import { CLI_JS } from '../../scripts/sandbox/paths';

/**
 * A guest filesystem for file-restore tests: a source tree with hostile names made on the host, a
 * partitioned ext4 disk holding it, the CLI, and the check that a restored tree is the source's.
 */

const execFileAsync = promisify(execFile);
const MiB = 1 << 20;

/** Hostile names, as bytes where they are not UTF-8. */
export const NEWLINE = 'new\nline';
export const QUOTES = `quo'te" $(touch pwned) ;`;
export const DASH = '-rf';
export const DOTS = '..hidden';
export const LATIN1 = Buffer.from([0x62, 0x61, 0x64, 0xff, 0x2e, 0x74, 0x78, 0x74]); // "bad\xff.txt"
export const TOP_FILE = 'top "file" with spaces.txt';

/** SHA-256 of a file, hex (the product's own streaming hash). */
export const sha256File = async (path: string): Promise<string> =>
  (await hashFile(createHash('sha256'), path)).digest('hex');

/**
 * The guest's files, on the host first: a folder `data` with hostile names, modes, whole-second mtimes, a
 * symlink inside, symlinks out, a FIFO and a setuid file; and one file at the top.
 */
export function makeSourceTree(src: string): void {
  const data = join(src, 'data');
  mkdirSync(join(data, 'sub', 'deeper'), { recursive: true });
  const put = (path: string | Buffer, content: Buffer | string, mode: number, mtime: number) => {
    writeFileSync(path, content);
    chmodSync(path, mode);
    utimesSync(path, mtime, mtime);
  };
  put(join(data, 'a.txt'), 'hello\n', 0o640, 1_577_934_245);
  put(join(data, NEWLINE), 'newline name\n', 0o600, 1_600_000_001);
  put(join(data, QUOTES), 'quotes\n', 0o644, 1_600_000_002);
  put(join(data, DASH), 'dash\n', 0o600, 1_600_000_003);
  put(join(data, DOTS), 'dots\n', 0o444, 1_600_000_004);
  put(Buffer.concat([Buffer.from(`${data}/`), LATIN1]), 'latin-1 name\n', 0o600, 1_600_000_005);
  put(join(data, 'sub', 'deeper', 'random.bin'), randomBytes(300 * 1024 + 17), 0o755, 1_600_000_006);
  put(join(data, 'sub', 'setuid'), '#!/bin/sh\n', 0o4755, 1_600_000_007);
  symlinkSync('a.txt', join(data, 'inside-link'));
  symlinkSync('../../../../etc/passwd', join(data, 'sub', 'climbs-out'));
  symlinkSync('/etc/shadow', join(data, 'absolute-link'));
  assert.equal(spawnSync('mkfifo', [join(data, 'a-fifo')]).status, 0);
  utimesSync(join(data, 'sub', 'deeper'), 1_500_000_000, 1_500_000_000);
  utimesSync(join(data, 'sub'), 1_500_000_001, 1_500_000_001);
  chmodSync(join(data, 'sub'), 0o750);
  utimesSync(data, 1_500_000_002, 1_500_000_002);
  put(join(src, TOP_FILE), randomBytes(5000), 0o604, 1_600_000_100);
}

/** A partitioned raw disk (MBR, one partition at 1 MiB) whose ext4 filesystem holds `src` (mkfs.ext4 -d). */
export function makeDisk(path: string, src: string): void {
  writeFileSync(path, '');
  spawnSync('truncate', ['-s', '64M', path]);
  const table = spawnSync('sfdisk', ['-q', path], { input: 'label: dos\nstart=2048, type=83\n' });
  assert.equal(table.status, 0, table.stderr?.toString());
  const mkfs = spawnSync('mkfs.ext4', ['-q', '-E', 'offset=1048576', '-d', src, path, '63M']);
  assert.equal(mkfs.status, 0, mkfs.stderr?.toString());
}

export async function cli(
  configFile: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [CLI_JS, '--config', configFile, ...args], {
      maxBuffer: 16 * MiB,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** Bytes, mode and mtime of every restored entry equal the source's; the refused ones are absent. */
export function assertRestored(src: string, to: string, options: { latin1?: boolean } = {}): void {
  const data = join(to, 'data');
  const same = (rel: string | Buffer) => {
    const a = typeof rel === 'string' ? join(src, 'data', rel) : Buffer.concat([Buffer.from(`${src}/data/`), rel]);
    const b = typeof rel === 'string' ? join(data, rel) : Buffer.concat([Buffer.from(`${data}/`), rel]);
    const [sa, sb] = [lstatSync(a), lstatSync(b)];
    const what = typeof rel === 'string' ? JSON.stringify(rel) : rel.toString('hex');
    assert.ok(sb.isFile(), `${what} is a file`);
    assert.deepEqual(readFileSync(b), readFileSync(a), `${what}: bytes`);
    assert.equal((sb.mode & 0o7777).toString(8), (sa.mode & 0o777).toString(8), `${what}: mode`);
    assert.equal(Math.floor(sb.mtimeMs / 1000), Math.floor(sa.mtimeMs / 1000), `${what}: mtime`);
    assert.equal(sb.uid, process.getuid!(), `${what}: owned by the restoring user`);
  };
  for (const rel of ['a.txt', NEWLINE, QUOTES, DASH, DOTS, 'sub/deeper/random.bin', 'sub/setuid']) same(rel);
  if (options.latin1 !== false) same(LATIN1);
  else assert.equal(lstatSafe(Buffer.concat([Buffer.from(`${data}/`), LATIN1])), false, 'the non-UTF-8 name not sent');
  assert.equal(lstatSync(join(data, 'sub', 'setuid')).mode & 0o7777, 0o755, 'setuid bit dropped');
  assert.equal(readlinkSync(join(data, 'inside-link')), 'a.txt', 'a symlink inside the tree is kept');
  for (const refused of ['sub/climbs-out', 'absolute-link', 'a-fifo'])
    assert.equal(existsSync(join(data, refused)) || lstatSafe(join(data, refused)), false, `${refused} refused`);
  assert.equal(lstatSync(join(data, 'sub')).mode & 0o777, 0o750, 'folder mode');
  assert.equal(Math.floor(lstatSync(join(data, 'sub')).mtimeMs / 1000), 1_500_000_001, 'folder mtime');
  assert.equal(Math.floor(lstatSync(join(data, 'sub', 'deeper')).mtimeMs / 1000), 1_500_000_000);
  assert.equal(Math.floor(lstatSync(data).mtimeMs / 1000), 1_500_000_002);
}

const lstatSafe = (p: string | Buffer) => {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
};
