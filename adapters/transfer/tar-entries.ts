/**
 * Reads a tar stream (GNU or POSIX/pax format, as `tar cf -` writes it) entry by entry, whole files at a
 * time. The names in it come from another machine: this only decodes them; the caller decides what they
 * may name (see DayCopy), and nothing here touches the file system.
 */

export interface TarEntry {
  name: string;
  /** 'file' for regular files; anything else (links, folders, devices) is reported, never followed. */
  type: 'file' | 'other';
  typeflag: string;
  size: number;
  /** Seconds since the epoch. */
  mtime: number;
  /** The file's bytes, as they arrived (no copy). */
  data: Buffer[];
}

export class TarFormatError extends Error {
  override name = 'TarFormatError';
}

const BLOCK = 512;

/** Bytes arriving in chunks, taken in exact lengths without copying more than a header needs. */
class ByteQueue {
  private chunks: Buffer[] = [];
  private length = 0;

  constructor(private readonly source: AsyncIterator<Buffer>) {}

  /** Waits until `n` bytes are there; false if the stream ended first. */
  async have(n: number): Promise<boolean> {
    while (this.length < n) {
      const next = await this.source.next();
      if (next.done) return false;
      const chunk = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value);
      this.chunks.push(chunk);
      this.length += chunk.length;
    }
    return true;
  }

  async take(n: number): Promise<Buffer[]> {
    if (!(await this.have(n))) throw new TarFormatError(`the stream ended inside an entry (wanted ${n} more bytes)`);
    const out: Buffer[] = [];
    let wanted = n;
    while (wanted > 0) {
      const head = this.chunks[0]!;
      if (head.length <= wanted) {
        out.push(head);
        this.chunks.shift();
        wanted -= head.length;
      } else {
        out.push(head.subarray(0, wanted));
        this.chunks[0] = head.subarray(wanted);
        wanted = 0;
      }
    }
    this.length -= n;
    return out;
  }

  /** Drops `n` bytes as they arrive: never holds more than a chunk (a huge entry that is not read costs nothing). */
  async skip(n: number): Promise<void> {
    for (let left = n; left > 0;) {
      if (!(await this.have(1))) throw new TarFormatError(`the stream ended inside an entry (wanted ${left} more bytes)`);
      const head = this.chunks[0]!;
      const dropped = Math.min(head.length, left);
      if (dropped === head.length) this.chunks.shift();
      else this.chunks[0] = head.subarray(dropped);
      this.length -= dropped;
      left -= dropped;
    }
  }

  /**
   * Hands everything left, to the end of the source, to `sink` as it arrives, after the zero bytes that
   * start it (tar's padding; at most `paddingLimit` of them).
   */
  async drain(sink: (chunk: Buffer) => void, paddingLimit: number): Promise<void> {
    let padding = 0;
    let padded = false;
    const feed = (chunk: Buffer) => {
      if (!padded) {
        const data = chunk.findIndex((b) => b !== 0);
        padding += data === -1 ? chunk.length : data;
        if (padding > paddingLimit)
          throw new TarFormatError(`more than ${paddingLimit} bytes of padding after the end of the archive`);
        if (data === -1) return;
        [padded, chunk] = [true, chunk.subarray(data)];
      }
      sink(chunk);
    };
    for (const chunk of this.chunks.splice(0)) feed(chunk);
    this.length = 0;
    for (let next = await this.source.next(); !next.done; next = await this.source.next())
      feed(Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value));
  }
}

const padding = (size: number) => (BLOCK - (size % BLOCK)) % BLOCK;

function text(header: Buffer, offset: number, length: number): string {
  const field = header.subarray(offset, offset + length);
  const end = field.indexOf(0);
  return field.subarray(0, end === -1 ? length : end).toString('utf8');
}

/** Octal ASCII, or base-256 (high bit of the first byte set) as GNU tar writes sizes of 8 GiB and more. */
function numeric(header: Buffer, offset: number, length: number, what: string): number {
  const field = header.subarray(offset, offset + length);
  if (field[0]! & 0x80) {
    let value = field[0]! & 0x7f;
    for (const byte of field.subarray(1)) value = value * 256 + byte;
    if (!Number.isSafeInteger(value)) throw new TarFormatError(`${what} out of range`);
    return value;
  }
  const digits = text(header, offset, length).trim();
  if (!/^[0-7]*$/.test(digits)) throw new TarFormatError(`${what} is not an octal number: ${JSON.stringify(digits)}`);
  return digits === '' ? 0 : parseInt(digits, 8);
}

function checksumOk(header: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : header[i]!;
  return sum === numeric(header, 148, 8, 'checksum');
}

/** pax extended header records: "<length> <key>=<value>\n". */
function paxRecords(data: Buffer): Map<string, string> {
  const records = new Map<string, string>();
  for (let at = 0; at < data.length;) {
    const space = data.indexOf(0x20, at);
    const length = Number(data.subarray(at, space).toString('ascii'));
    if (space === -1 || !Number.isSafeInteger(length) || length <= 0 || at + length > data.length)
      throw new TarFormatError('malformed pax header');
    const record = data.subarray(space + 1, at + length - 1).toString('utf8');
    const equals = record.indexOf('=');
    records.set(record.slice(0, equals), record.slice(equals + 1));
    at += length;
  }
  return records;
}

/** Zero padding after the end-of-archive block: tar pads to its record size (64 KiB at `-b 128`). */
const PADDING_LIMIT = 1 << 20;
/** Longest body of a metadata entry (long name, pax header): names are at most a few KiB. */
const METADATA_LIMIT = 64 << 10;
const METADATA_TYPES: Record<string, string> = {
  L: 'long name',
  K: 'long link target',
  x: 'pax header',
  g: 'global pax header',
};

export interface TarReadOptions {
  /** Largest regular file taken whole into memory: a bigger one is refused before its data is read. */
  maxFileBytes: number;
  /** Takes what follows the archive (after its zero padding) as it arrives; without it, anything there is refused. */
  trailer?: (chunk: Buffer) => void;
}

const noTrailer = () => {
  throw new TarFormatError('data after the end of the archive');
};

/**
 * The entries of a tar stream, in order, each with all its data. The stream is read to its end: what
 * follows the end-of-archive block (zero padding, then whatever a command run after tar printed) goes
 * to `options.trailer`. No entry is taken into memory past its limit.
 */
export async function* tarEntries(
  source: AsyncIterable<Buffer>,
  { maxFileBytes, trailer = noTrailer }: TarReadOptions,
): AsyncGenerator<TarEntry, void> {
  const bytes = new ByteQueue(source[Symbol.asyncIterator]());
  let longName: string | undefined;
  let pax = new Map<string, string>();
  for (;;) {
    if (!(await bytes.have(BLOCK))) throw new TarFormatError('the stream ended without an end-of-archive block');
    const header = Buffer.concat(await bytes.take(BLOCK));
    if (header.every((b) => b === 0)) {
      await bytes.drain(trailer, PADDING_LIMIT);
      return;
    }
    if (!checksumOk(header)) throw new TarFormatError('header checksum mismatch');
    const typeflag = String.fromCharCode(header[156]!);
    let size = numeric(header, 124, 12, 'size');
    const body = async () => {
      if (size > METADATA_LIMIT)
        throw new TarFormatError(`a ${METADATA_TYPES[typeflag]} of ${size} bytes (more than ${METADATA_LIMIT})`);
      const data = await bytes.take(size);
      await bytes.skip(padding(size));
      return Buffer.concat(data);
    };
    if (typeflag === 'L') {
      longName = (await body()).toString('utf8').replace(/\0+$/, '');
      continue;
    }
    if (typeflag === 'x') {
      pax = paxRecords(await body());
      continue;
    }
    if (typeflag === 'g' || typeflag === 'K') {
      await body(); // global defaults and long link targets name nothing we store
      continue;
    }
    const ustar = header.subarray(257, 262).toString('ascii') === 'ustar';
    const prefix = ustar ? text(header, 345, 155) : '';
    const name = pax.get('path') ?? longName ?? (prefix ? `${prefix}/${text(header, 0, 100)}` : text(header, 0, 100));
    if (pax.has('size')) size = Number(pax.get('size'));
    const mtime = pax.has('mtime') ? Number(pax.get('mtime')) : numeric(header, 136, 12, 'mtime');
    if (!Number.isSafeInteger(size) || size < 0) throw new TarFormatError(`bad size for ${JSON.stringify(name)}`);
    const isFile = typeflag === '0' || typeflag === '\0' || typeflag === '7';
    if (isFile && size > maxFileBytes)
      throw new TarFormatError(`${JSON.stringify(name)} is ${size} bytes, more than the ${maxFileBytes} asked for`);
    const data = isFile ? await bytes.take(size) : (await bytes.skip(size), []);
    await bytes.skip(padding(size));
    longName = undefined;
    pax = new Map();
    yield { name, type: isFile ? 'file' : 'other', typeflag, size, mtime, data };
  }
}
