/** The JSON restic 0.14 prints, as far as the product reads it. */

/** One line of `restic backup --json` while it runs. */
export interface BackupStatus {
  message_type: 'status';
  percent_done?: number;
  bytes_done?: number;
  total_bytes?: number;
}

/** The last line of `restic backup --json`. */
export interface BackupSummary {
  message_type: 'summary';
  snapshot_id: string;
  data_added: number;
  total_bytes_processed: number;
}

export interface BackupError {
  message_type: 'error';
  error?: unknown;
  during?: string;
  item?: string;
}

export type BackupMessage = BackupStatus | BackupSummary | BackupError;

/** One entry of `restic snapshots --json`. */
export interface Snapshot {
  id: string;
  short_id: string;
  time: string;
  tags: string[];
  paths: string[];
  hostname?: string;
  /** Its root tree (the blob id). */
  tree?: string;
  /** A snapshot made by `restic copy`: the id of the snapshot it is a copy of (in the source repository). */
  original?: string;
}

/** One group of `restic forget --json`. */
export interface ForgetGroup {
  tags: string[] | null;
  host?: string;
  paths: string[] | null;
  keep: Snapshot[] | null;
  remove: Snapshot[] | null;
}

/** `restic stats --json`. */
export interface RepositoryStats {
  total_size: number;
  total_file_count?: number;
  total_blob_count?: number;
  snapshots_count?: number;
}

/**
 * Splits a chunked stream of JSON lines into messages: feed() returns the complete lines' messages and
 * keeps a partial last line for the next chunk. A line that is not a JSON object is skipped (restic may
 * print plain text on stdout, e.g. a warning), never an exception in the middle of a backup.
 */
export class JsonLines<T = unknown> {
  private rest = '';

  feed(chunk: string): T[] {
    const lines = (this.rest + chunk).split('\n');
    this.rest = lines.pop() ?? '';
    return lines.flatMap((line) => parseLine<T>(line));
  }

  /** The messages of a last line without a newline. */
  end(): T[] {
    const line = this.rest;
    this.rest = '';
    return parseLine<T>(line);
  }
}

function parseLine<T>(line: string): T[] {
  const text = line.trim();
  if (!text.startsWith('{')) return [];
  try {
    const value: unknown = JSON.parse(text);
    return value && typeof value === 'object' && !Array.isArray(value) ? [value as T] : [];
  } catch {
    return [];
  }
}

/** Typed snapshots from `restic snapshots --json` (tags null when a snapshot has none). */
export function parseSnapshots(stdout: string): Snapshot[] {
  const raw = JSON.parse(stdout || '[]') as (Omit<Snapshot, 'tags' | 'paths'> & {
    tags?: string[] | null;
    paths?: string[] | null;
  })[];
  return (raw ?? []).map((s) => ({
    id: s.id,
    short_id: s.short_id,
    time: s.time,
    tags: s.tags ?? [],
    paths: s.paths ?? [],
    ...(s.hostname === undefined ? {} : { hostname: s.hostname }),
    ...(typeof s.tree === 'string' ? { tree: s.tree } : {}),
    ...(typeof s.original === 'string' ? { original: s.original } : {}),
  }));
}
