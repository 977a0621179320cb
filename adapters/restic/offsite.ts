import { connect } from 'node:net';
import type { Config } from '../../config/schema';
import { AdapterError } from '../adapter-error';
import { checkSnapshotId, checkTag } from './restic-args';
import { resticError } from './restic-errors';
import { checkPasswordFile } from './restic-paths';
import { interruptRestic, runRestic, startRestic, tailCollector, type ResticEnv } from './restic-process';

/**
 * Off-site copies (3-2-1): a second restic repository, usually behind `rclone serve restic --append-only`,
 * that `restic copy` adds the primary's new snapshots to. Both repositories' locations and password files
 * go to restic through the environment (RESTIC_FROM_* for the source), never in argv or a message's text
 * beyond the location.
 */
export interface OffsiteEnv extends ResticEnv {
  /** The off-site repository's name in config (`offsite.<name>`). */
  name: string;
}

/** The off-site repository `name` of config (refused when config has none by that name). */
export function offsiteEnvOf(config: Config, name: string): OffsiteEnv {
  const entry = config.offsite[name];
  if (!entry)
    throw new AdapterError(
      `no off-site repository ${JSON.stringify(name)} in config (have: ${Object.keys(config.offsite).join(', ') || 'none'})`,
      'refused',
      'OffsiteNotConfigured',
    );
  return {
    name,
    repository: entry.repository,
    passwordFile: entry.passwordFile,
    ...(entry.httpUser && entry.httpPasswordFile
      ? { httpAuth: { user: entry.httpUser, passwordFile: entry.httpPasswordFile } }
      : {}),
  };
}

/** The environment that names `from` as the source repository of a copy (or of copied chunker parameters). */
function fromEnv(dest: ResticEnv, from: ResticEnv): ResticEnv {
  return {
    ...dest,
    env: { ...dest.env, RESTIC_FROM_REPOSITORY: from.repository, RESTIC_FROM_PASSWORD_FILE: from.passwordFile },
  };
}

/**
 * Creates the off-site repository (format 2) with the primary's chunker parameters, so the same data cuts
 * into the same blobs there and deduplicates alike; one that exists already is left as it is.
 */
export async function initOffsite(dest: ResticEnv, from: ResticEnv): Promise<'created' | 'existed'> {
  await checkPasswordFile(dest);
  await checkPasswordFile(from);
  const config = await runRestic(dest, ['cat', 'config']);
  if (config.code === 0) return 'existed';
  const err = resticError('cat', config.code, config.signal, config.stderr);
  if (err.type !== 'ResticRepositoryMissingError') throw err;
  const run = await runRestic(fromEnv(dest, from), ['init', '--repository-version', '2', '--copy-chunker-params']);
  if (run.code !== 0) throw resticError('init', run.code, run.signal, run.stderr);
  return 'created';
}

export interface CopyRequest {
  /** Snapshot ids to copy; or */
  snapshotIds?: string[];
  /** tag groups: a snapshot carrying every tag of any one group is copied (e.g. [["vm=a","set=S"]]). */
  tagGroups?: string[][];
  /** --limit-upload, in bytes/s (sent in KiB/s, at least 1); 0 or unset: no limit. */
  maxBytesPerSecond?: number;
  onProgress?: (progress: CopyProgress) => void;
  signal?: AbortSignal;
}

export interface CopyProgress {
  /** restic's own count of the packs of the current snapshot read from the source and queued for upload. */
  packsCopied: number;
  packsTotal: number;
  /** Snapshots saved in the destination so far, and snapshots found there already (skipped). */
  saved: number;
  skipped: number;
}

export interface CopyResult extends CopyProgress {
  /** The destination's new snapshots' short ids, as restic printed them. */
  savedIds: string[];
}

/** `--tag a,b --tag c`: a snapshot with both a and b, or with c (restic's own AND within, OR between). */
export function copyArgs(request: CopyRequest): string[] {
  const ids = (request.snapshotIds ?? []).map(checkSnapshotId);
  const groups = (request.tagGroups ?? []).filter((g) => g.length > 0);
  if (ids.length && groups.length)
    throw new AdapterError('restic copy of ids and tags at once is refused', 'refused', 'ResticArgumentError');
  if (!ids.length && !groups.length)
    throw new AdapterError(
      'restic copy without snapshot ids or tags is refused (it would copy everything)',
      'refused',
      'ResticArgumentError',
    );
  const limit = request.maxBytesPerSecond
    ? ['--limit-upload', String(Math.max(1, Math.floor(request.maxBytesPerSecond / 1024)))]
    : [];
  const tags = groups.flatMap((g) => ['--tag', g.map(checkTag).join(',')]);
  return ['copy', ...limit, ...tags, ...(ids.length ? ['--', ...ids] : [])];
}

/** Reads restic 0.14 copy's text output (it has no --json): packs copied, snapshots saved and skipped. */
export function parseCopyOutput(text: string): CopyResult {
  const packs = [...text.matchAll(/(\d+) \/ (\d+) packs copied/g)].at(-1);
  const savedIds = [...text.matchAll(/^snapshot ([0-9a-f]{8,64}) saved$/gm)].map((m) => m[1]!);
  const skipped = [...text.matchAll(/^skipping source snapshot [0-9a-f]+, was already copied/gm)].length;
  return {
    packsCopied: packs ? Number(packs[1]) : 0,
    packsTotal: packs ? Number(packs[2]) : 0,
    saved: savedIds.length,
    skipped,
    savedIds,
  };
}

/**
 * `restic copy` from `from` into `dest` of the given snapshots: resumable by nature (a snapshot already
 * there is skipped, a pack already there is not sent again). The signal interrupts restic (SIGINT: it
 * removes its lock; killed when that takes more than 5 s) and this throws; a server that cannot be reached is a transient ResticUnreachableError.
 */
export async function copySnapshots(dest: ResticEnv, from: ResticEnv, request: CopyRequest): Promise<CopyResult> {
  const args = copyArgs(request);
  await checkPasswordFile(dest);
  await checkPasswordFile(from);
  const env = fromEnv(dest, from);
  // restic prints its progress to a pipe too when told how often.
  const child = startRestic({ ...env, env: { ...env.env, RESTIC_PROGRESS_FPS: '1' } }, args);
  const err = tailCollector();
  let out = '';
  let aborted = false;
  let killTimer: NodeJS.Timeout | undefined;
  const onAbort = () => {
    aborted = true;
    killTimer = interruptRestic(child); // its lock there is stale if it is killed: the next copy removes it
  };
  child.stdin.on('error', () => {});
  child.stdin.end();
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    out += chunk;
    if (out.length > 1 << 20) out = out.slice(-(1 << 19)); // the tail: progress lines repeat
    const { packsCopied, packsTotal, saved, skipped } = parseCopyOutput(out);
    request.onProgress?.({ packsCopied, packsTotal, saved, skipped });
  });
  child.stderr.on('data', (chunk: Buffer) => err.add(chunk));
  if (request.signal?.aborted) onAbort();
  else request.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const [code, signal] = await new Promise<[number | null, string | null]>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (c, s) => resolve([c, s]));
    });
    if (aborted)
      throw new AdapterError(
        `restic copy to ${dest.repository} was stopped (${signalReason(request.signal)})`,
        'transient',
        'ResticCopyStoppedError',
      );
    if (code !== 0) throw resticError('copy', code, signal, err.text());
    return parseCopyOutput(out);
  } finally {
    clearTimeout(killTimer);
    request.signal?.removeEventListener('abort', onAbort);
  }
}

function signalReason(signal?: AbortSignal): string {
  const reason: unknown = signal?.reason;
  return reason instanceof Error ? reason.message : typeof reason === 'string' ? reason : 'aborted';
}

/** host and port of a `rest:http(s)://` location (undefined for SFTP and anything else). */
export function restEndpoint(repository: string): { host: string; port: number } | undefined {
  const m = /^rest:(https?):\/\/(?:[^@/]*@)?(\[[^\]]+\]|[^:/]+)(?::(\d+))?/.exec(repository);
  if (!m) return undefined;
  return { host: m[2]!.replace(/^\[|\]$/g, ''), port: m[3] ? Number(m[3]) : m[1] === 'https' ? 443 : 80 };
}

/** Whether a TCP connection to the endpoint opens within `timeoutMs`. */
export function reachable(endpoint: { host: string; port: number }, timeoutMs = 2000): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(endpoint);
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

/**
 * Aborts `controller` when the REST server has refused connections for `seconds` in a row (probed every
 * second): restic itself retries a dead server's uploads for minutes. Returns the stop function.
 */
export function watchReachable(repository: string, seconds: number, controller: AbortController): () => void {
  const endpoint = restEndpoint(repository);
  if (!endpoint) return () => {};
  let downSince: number | undefined;
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    void reachable(endpoint).then((ok) => {
      busy = false;
      if (ok) downSince = undefined;
      else {
        downSince ??= Date.now();
        if (Date.now() - downSince >= seconds * 1000 && !controller.signal.aborted)
          controller.abort(
            new Error(`the off-site server ${endpoint.host}:${endpoint.port} accepted no connection for ${seconds} s`),
          );
      }
    });
  }, 1000);
  return () => clearInterval(timer);
}
