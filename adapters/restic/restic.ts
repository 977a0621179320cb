import { PassThrough, type Readable } from 'node:stream';
import { AdapterError } from '../adapter-error';
import { readSecretFile, SecretFileExposedError } from '../local/secret-file';
import { checkCount, checkSnapshotId, checkStdinFilename, checkSubset, checkTag } from './restic-args';
import { resticError } from './restic-errors';
import {
  JsonLines,
  parseSnapshots,
  type BackupMessage,
  type ForgetGroup,
  type RepositoryStats,
  type Snapshot,
} from './restic-json';
import { runRestic, runResticOk, startRestic, tailCollector, type ResticEnv } from './restic-process';

export interface BackupStdinRequest {
  /** The producer's output (e.g. a disk read): restic stores it as one file. */
  stdin: Readable;
  filename: string;
  tags: string[];
  onProgress?: (bytesDone: number) => void;
  signal?: AbortSignal;
}

export interface BackupResult {
  snapshotId: string;
  dataAdded: number;
  totalBytesProcessed: number;
}

export interface CheckResult {
  ok: boolean;
  output: string;
  /** The pack ids restic names as damaged (when not ok and it names any). */
  damagedPacks: string[];
}

export interface ForgetRequest {
  tags: string[];
  keepLast?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  dryRun?: boolean;
  prune?: boolean;
}

/**
 * The restic repository of the store: the one place in the product that runs restic. Arguments go as an
 * array (no shell); repository and password file through the environment; the password itself is never
 * read into a message or a log, only its file's mode is checked (refused when others may read it).
 */
export class Restic {
  constructor(private readonly options: ResticEnv) {}

  /** Where the repository is (for messages; never the password). */
  get repository(): string {
    return this.options.repository;
  }

  /** How restic is started, for operations kept in files of their own beside this class. */
  get env(): ResticEnv {
    return this.options;
  }

  /** Refuses a password file others may read or write, before any restic run uses it. */
  private async checkPasswordFile(): Promise<void> {
    try {
      await readSecretFile(this.options.passwordFile, 'restic password file');
    } catch (error) {
      if (error instanceof SecretFileExposedError)
        throw new AdapterError(error.message, 'auth', 'ResticPasswordFileExposedError', { cause: error });
      throw new AdapterError(
        `restic password file ${this.options.passwordFile} cannot be read: ${(error as Error).message}`,
        'auth',
        'ResticPasswordFileError',
        { cause: error },
      );
    }
  }

  private async run(args: string[], signal?: AbortSignal) {
    await this.checkPasswordFile();
    return runResticOk(this.options, args, signal);
  }

  /** Creates the repository (format version 2) unless it exists already; a wrong password still fails. */
  async init(): Promise<'created' | 'existed'> {
    await this.checkPasswordFile();
    const config = await runRestic(this.options, ['cat', 'config']);
    if (config.code === 0) return 'existed';
    const err = resticError('cat', config.code, config.signal, config.stderr);
    if (err.type !== 'ResticRepositoryMissingError') throw err;
    await runResticOk(this.options, ['init', '--repository-version', '2']);
    return 'created';
  }

  /**
   * Stores a stream as one file of a new snapshot. If the stream errors (or the signal aborts), restic is
   * interrupted before its stdin ends, so no snapshot of a truncated stream is written, and this throws.
   */
  async backupStdin(request: BackupStdinRequest): Promise<BackupResult> {
    const filename = checkStdinFilename(request.filename);
    const tags = request.tags.flatMap((tag) => ['--tag', checkTag(tag)]);
    await this.checkPasswordFile();
    const args = ['backup', '--stdin', '--stdin-filename', filename, ...tags, '--json', '--compression', 'auto'];
    const child = startRestic(this.options, args);
    const err = tailCollector();
    const lines = new JsonLines<BackupMessage>();
    let summary: BackupResult | undefined;
    let failure: Error | undefined;
    const take = (messages: BackupMessage[]) => {
      for (const m of messages) {
        if (m.message_type === 'status' && typeof m.bytes_done === 'number') request.onProgress?.(m.bytes_done);
        if (m.message_type === 'summary')
          summary = {
            snapshotId: m.snapshot_id,
            dataAdded: m.data_added,
            totalBytesProcessed: m.total_bytes_processed,
          };
      }
    };
    const interrupt = (why: Error) => {
      failure ??= why;
      request.stdin.unpipe(child.stdin);
      // SIGINT: restic cancels the backup without a snapshot and removes its lock.
      child.kill('SIGINT');
    };
    const onStreamError = (error: Error) =>
      interrupt(
        new AdapterError(
          `restic backup of ${filename}: the producer stream failed: ${error.message}`,
          'permanent',
          'ResticProducerError',
          { cause: error },
        ),
      );
    const onAbort = () =>
      interrupt(new AdapterError(`restic backup of ${filename} was aborted`, 'permanent', 'ResticAbortedError'));
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => take(lines.feed(chunk)));
    child.stderr.on('data', (chunk: Buffer) => err.add(chunk));
    child.stdin.on('error', () => {}); // restic ended early: its exit status says why
    request.stdin.on('error', onStreamError);
    if (request.signal?.aborted) onAbort();
    else request.signal?.addEventListener('abort', onAbort, { once: true });
    request.stdin.pipe(child.stdin);
    try {
      const [code, signal] = await new Promise<[number | null, string | null]>((resolve, reject) => {
        child.on('error', reject);
        child.on('close', (c, s) => resolve([c, s]));
      });
      take(lines.end());
      if (failure) throw failure;
      if (code === 3) {
        // restic 0.14 still writes a snapshot when its input could not be read to the end: never kept.
        if (summary) await this.forgetSnapshots([summary.snapshotId]);
        throw new AdapterError(
          `restic backup of ${filename} could not read all of its input; the incomplete snapshot was forgotten`,
          'transient',
          'ResticIncompleteInputError',
        );
      }
      if (code !== 0) throw resticError('backup', code, signal, err.text());
      if (!summary)
        throw new AdapterError(
          `restic backup of ${filename} printed no summary: ${err.text()}`,
          'permanent',
          'ResticError',
        );
      return summary;
    } finally {
      request.stdin.off('error', onStreamError);
      request.signal?.removeEventListener('abort', onAbort);
    }
  }

  /** The snapshots, optionally only those carrying every given tag. */
  /** The snapshots (with `noLock`, read without taking a lock: a reader that is stopped leaves none). */
  async snapshots(filter: { tags?: string[]; noLock?: boolean; signal?: AbortSignal } = {}): Promise<Snapshot[]> {
    const tags = filter.tags?.length ? ['--tag', filter.tags.map(checkTag).join(',')] : [];
    const run = await this.run(
      [...(filter.noLock ? ['--no-lock'] : []), 'snapshots', '--json', ...tags],
      filter.signal,
    );
    return parseSnapshots(run.stdout);
  }

  /** A file of a snapshot as a stream; the stream errors if restic exits non-zero. */
  dump(snapshotId: string, filename: string): Readable {
    const id = checkSnapshotId(snapshotId);
    const name = checkStdinFilename(filename);
    const out = new PassThrough();
    this.checkPasswordFile().then(
      () => {
        const child = startRestic(this.options, ['dump', id, name]);
        const err = tailCollector();
        child.stdin.on('error', () => {});
        child.stdin.end();
        child.stderr.on('data', (chunk: Buffer) => err.add(chunk));
        child.stdout.pipe(out, { end: false });
        out.on('close', () => {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
        });
        child.on('error', (error) => out.destroy(error));
        child.on('close', (code, signal) => {
          if (code === 0) out.end();
          else out.destroy(resticError('dump', code, signal, err.text()));
        });
      },
      (error: Error) => out.destroy(error),
    );
    return out;
  }

  /** `restic check`, reading all or a subset of the pack data; never throws for a damaged repository. */
  async check(options: { readDataSubset?: string } = {}): Promise<CheckResult> {
    const subset = options.readDataSubset ? [`--read-data-subset=${checkSubset(options.readDataSubset)}`] : [];
    await this.checkPasswordFile();
    const run = await runRestic(this.options, ['check', ...subset]);
    const output = `${run.stdout}${run.stderr}`;
    if (run.code === 0) return { ok: true, output, damagedPacks: [] };
    const err = resticError('check', run.code, run.signal, run.stderr);
    if (err.type !== 'ResticError') throw err; // wrong password, no repository, locked: not a verdict
    return { ok: false, output, damagedPacks: damagedPacks(output) };
  }

  /** Removes snapshots of the given tags beyond the keep policy (`--prune`: and their unused data). */
  async forget(request: ForgetRequest): Promise<ForgetGroup[]> {
    if (!request.tags.length)
      throw new AdapterError('restic forget without tags is refused', 'refused', 'ResticArgumentError');
    const keep: [string, number | undefined][] = [
      ['--keep-last', request.keepLast],
      ['--keep-daily', request.keepDaily],
      ['--keep-weekly', request.keepWeekly],
      ['--keep-monthly', request.keepMonthly],
    ];
    const policy = keep.flatMap(([flag, n]) => (n === undefined ? [] : [flag, checkCount(flag, n)]));
    if (!policy.length)
      throw new AdapterError('restic forget without a keep policy is refused', 'refused', 'ResticArgumentError');
    const args = ['forget', '--json', '--tag', request.tags.map(checkTag).join(','), ...policy];
    if (request.dryRun) args.push('--dry-run');
    if (request.prune) args.push('--prune');
    const run = await this.run(args);
    // With --prune, restic prints the prune's text after the JSON line.
    const line = run.stdout.split('\n').find((l) => l.trimStart().startsWith('['));
    return line ? (JSON.parse(line) as ForgetGroup[]) : [];
  }

  /** Removes the named snapshots (their data stays until `prune`). */
  async forgetSnapshots(ids: string[]): Promise<void> {
    if (!ids.length) return;
    await this.run(['forget', ...ids.map(checkSnapshotId)]);
  }

  /** Removes data no snapshot uses any more. */
  async prune(signal?: AbortSignal): Promise<string> {
    return (await this.run(['prune'], signal)).stdout;
  }

  async stats(mode: 'raw-data' | 'restore-size'): Promise<RepositoryStats> {
    return JSON.parse((await this.run(['stats', '--json', '--mode', mode])).stdout) as RepositoryStats;
  }

  /** Removes stale locks only (restic keeps those of live processes). */
  async unlockStale(): Promise<void> {
    await this.run(['unlock']);
  }
}

/**
 * The pack ids restic 0.14's check names as damaged: "Pack ID does not match, want <id>, got <hash>"
 * (the want is the pack's name), and "pack <id>: ..." lines (but for an unreferenced pack's hint).
 */
export function damagedPacks(output: string): string[] {
  const ids = new Set<string>();
  for (const m of output.matchAll(/Pack ID does not match, want ([0-9a-f]{64})/g)) ids.add(m[1]!);
  // "pack <id>: not referenced in any index" is a leftover (a copy or backup killed mid-way), not damage.
  for (const m of output.matchAll(/\bpack ([0-9a-f]{64})\b(?!: not referenced in any index)/gi)) ids.add(m[1]!);
  return [...ids];
}
