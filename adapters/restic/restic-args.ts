import { AdapterError } from '../adapter-error';

function refuse(what: string, value: string, why: string): never {
  throw new AdapterError(
    `restic ${what} ${JSON.stringify(value)} is refused: ${why}`,
    'refused',
    'ResticArgumentError',
  );
}

function common(what: string, value: string): void {
  if (value === '') refuse(what, value, 'it is empty');
  if (value.startsWith('-')) refuse(what, value, 'it starts with "-" (restic would read an option)');
  if (/[\n\r\0]/.test(value)) refuse(what, value, 'it holds a newline or NUL');
}

/** A tag restic stores as given: a comma would split it into two tags. */
export function checkTag(tag: string): string {
  common('tag', tag);
  if (tag.includes(',')) refuse('tag', tag, 'a comma would split it into two tags');
  return tag;
}

/** The name a stdin backup is stored under (and dumped by). */
export function checkStdinFilename(filename: string): string {
  common('filename', filename);
  return filename;
}

/** A snapshot id (full or short hex) or `latest`. */
export function checkSnapshotId(id: string): string {
  if (id !== 'latest' && !/^[0-9a-f]{8,64}$/.test(id)) refuse('snapshot id', id, 'not a hex snapshot id');
  return id;
}

/** `n/N` for `--read-data-subset`, or a percentage such as `5%`. */
export function checkSubset(subset: string): string {
  const part = /^(\d+)\/(\d+)$/.exec(subset);
  if (part) {
    const n = Number(part[1]);
    const total = Number(part[2]);
    if (n >= 1 && n <= total) return subset;
  } else if (/^\d+(\.\d+)?%$/.test(subset)) return subset;
  return refuse('read-data subset', subset, 'expected n/N with 1 <= n <= N, or a percentage');
}

/** A non-negative whole count for the keep policy. */
export function checkCount(what: string, value: number): string {
  if (!Number.isInteger(value) || value < 0) refuse(what, String(value), 'not a whole number >= 0');
  return String(value);
}
