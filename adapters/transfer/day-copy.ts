import { renameSync, rmSync, utimesSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { SupimConfig, TransferConfig } from '../../config/schema';
import type { DayResult } from '../../domain/daily-summary';
import { remoteSha256, entriesFromListing, TreeListingParser, type RemoteEntry } from '../ssh/remote-tree';
import type { SshSession } from '../ssh/ssh-session';
import { fetchRemoteFile } from './fetch-remote-file';
import { makeFolders, type StoreFileMode } from '../local/file-mode';
import type { LocalTree } from '../local/local-tree';
import { permanentReason, type DayCopyOutcome, type DayCopyProgress } from './day-copy-rules';
import { tarEntries } from './tar-entries';
import type { DayCopyOptions, Staged } from './day-copy-options';
import { BoundedTasks, TAR_STREAMS, tarBatchCommand, tarBatches } from './tar-batches';
import { DayStaging } from '../local/day-staging';
import { SmallFileWriter } from './small-file-writer';
import { RateCap } from './rate-cap';
import { keepLongerBackup } from './superseded';

const LARGE_FILE_LANES = 2;
/**
 * Threads writing streamed files, each into a staging folder of its own (see DayStaging). Four, even on two
 * cores: a create waiting on its folder's inode allocation holds no core (measured: 4 lanes 1.15-1.23x
 * rsync on disk, 2 lanes 1.10-1.16x, 1 lane 0.93x, in alternating runs of bench/daily-copy.ts).
 */
const WRITER_LANES = 4;
/** Superseded copies named in a day's result (which goes into the workflow's history); the rest are counted. */
const MAX_SUPERSEDED_LISTED = 20;
/**
 * Copies one day's changed files, each isolated from the others: every file is written under a name that is
 * not its own and flushed; the source is listed again; only then do the files that did not change meanwhile
 * get their real names. A file that cannot be copied is named, never holds back the rest.
 * Small files travel as one tar stream per batch (no round trip per file, as rsync) and are written by
 * threads into staging folders (DayStaging); large ones as pipelined SFTP reads into a partial file of their
 * own there, resumable from the heartbeats of a crashed attempt. No partial file is ever in the day's folder.
 */
export class DayCopy {
  private readonly staged: Staged[] = [];
  /** Written by a tar stream, not yet flushed. */
  private readonly unflushed: Staged[] = [];
  private readonly problems = new Map<string, unknown>();
  /** The folder as listed by the last tar stream's command, after it read every file. */
  private listingAfterStream?: RemoteEntry[];
  /** Some file was read over SFTP (after any tar stream's listing). */
  private readOneByOne = false;
  /** The files stage() was asked for, as listed before: what a fresh listing is compared with. */
  private files: readonly RemoteEntry[] = [];
  private readonly resumable: Map<string, DayCopyProgress['inFlight'][number]>;
  /** Where files are written before they get their real names (set up by stage()). */
  private staging?: DayStaging;
  /** Streamed files so far: numbers their staging names. */
  private streamed = 0;
  /** transfer.maxBytesPerSecond over a tar stream (made anew by tarStream()), and the bytes it carried. */
  private streamCap = new RateCap(undefined);
  private streamedBytes = 0;

  private readonly ssh: SshSession;
  private readonly source: string;
  private readonly local: LocalTree;
  private readonly stored: ReadonlySet<string>;
  private readonly supim: SupimConfig;
  private readonly transfer: TransferConfig;
  private readonly result: DayResult;
  private readonly progress: DayCopyProgress;
  private readonly now: () => Date;
  private readonly signal: AbortSignal;
  private readonly mode: StoreFileMode;
  private readonly flushStore: (path: string) => Promise<void>;
  private readonly localStep: <T>(step: () => Promise<T>) => Promise<T>;

  constructor(options: DayCopyOptions) {
    ({
      ssh: this.ssh,
      source: this.source,
      local: this.local,
      stored: this.stored,
      supim: this.supim,
      transfer: this.transfer,
      result: this.result,
      progress: this.progress,
      now: this.now,
      signal: this.signal,
      mode: this.mode,
      flushStore: this.flushStore,
      localStep: this.localStep,
    } = options);
    const previous = Context.current().info.heartbeatDetails as DayCopyProgress | undefined;
    this.resumable = new Map((previous?.inFlight ?? []).map((f) => [f.path, f]));
  }

  private get hashing(): boolean {
    return this.supim.verify === 'sha256';
  }

  /** Largest file streamed with others (and held in memory whole): an eighth of a read pipeline. */
  private get smallFileBytes(): number {
    return (this.transfer.parallelReads * this.transfer.chunkBytes) / 8;
  }

  /**
   * Writes every file to its partial name and flushes it; a file that fails is set aside with its error.
   * Once every file has been read, `relist` lists the source again (while the copies are flushed) and its
   * listing is returned: commit() compares it with the one the copy started from.
   */
  async stage(files: RemoteEntry[], relist: () => Promise<RemoteEntry[]>): Promise<RemoteEntry[]> {
    this.progress.phase = 'copying';
    this.files = files;
    this.progress.filesToCopy = files.length;
    this.progress.bytesToCopy = files.reduce((sum, f) => sum + f.size, 0);
    await makeFolders(this.result.destination, this.mode);
    // Small files are latency-bound: streamed together. Large ones fill a whole read pipeline each: a couple
    // at once, which bounds memory at about LARGE_FILE_LANES x pipeline.
    const small = files.filter((f) => f.size <= this.smallFileBytes && !this.resumable.has(f.path));
    const streamed = new Set(small);
    const large = files.filter((f) => !streamed.has(f));
    const { destinationRoot } = this.supim;
    const lanes = small.length > 0 ? WRITER_LANES : 0;
    this.staging = await this.localStep(() =>
      DayStaging.prepare(
        destinationRoot,
        this.result.day.label,
        this.result.destination,
        lanes,
        this.mode,
        this.resumable.keys(),
      ),
    );
    const settled = await Promise.allSettled([
      this.sftpLanes(large, LARGE_FILE_LANES),
      // With no large file, the last tar stream can list the folder once it has read everything.
      this.tarStream(small, large.length === 0).then((left) => this.sftpLanes(left, this.transfer.parallelFiles)),
    ]);
    for (const s of settled) if (s.status === 'rejected') throw s.reason;
    if (this.signal.aborted) throw ApplicationFailure.retryable('cancelled', 'Cancelled');
    // That listing counts only if no file was read after it (one by one, over SFTP).
    const listed = this.readOneByOne ? undefined : this.listingAfterStream;
    const [after] = await Promise.all([listed ?? relist(), this.flushStreamed()]);
    return after;
  }

  /** One syncfs for every file the tar streams wrote (the SFTP copies flush their own). */
  private async flushStreamed(): Promise<void> {
    const streamed = this.unflushed.splice(0);
    if (streamed.length === 0) return;
    try {
      await this.localStep(() => this.flushStore(this.result.destination));
      this.staged.push(...streamed);
    } catch (err) {
      for (const s of streamed) this.problems.set(s.file.path, err);
    }
  }

  /** SHA-256 of each staged copy (taken while writing) against the source's; a mismatch is not committed. */
  async verifyChecksums(): Promise<void> {
    if (!this.hashing || this.staged.length === 0) return;
    this.progress.phase = 'verifying';
    const paths = this.staged.map((s) => `${this.source}/${s.file.path}`);
    const remote = await remoteSha256(this.ssh, paths, this.signal);
    const mismatched = new Set(this.staged.filter((s, i) => remote[i] !== s.sha256));
    if (mismatched.size === 0) return;
    const kept = this.staged.filter((s) => !mismatched.has(s));
    this.staged.splice(0, this.staged.length, ...kept);
    for (const s of mismatched) {
      await rm(this.partialPathOf(s), { force: true });
      this.problems.set(s.file.path, new Error('SHA-256 differs between the compute host and the copy'));
    }
  }

  /**
   * Gives the staged files that the fresh listing shows unchanged their real names; drops the others.
   * Sorts every file that went wrong into changed (the source moved on), failed (for good) or retryable.
   */
  async commit(relisted: RemoteEntry[]): Promise<DayCopyOutcome> {
    return this.localStep(() => this.commitLocally(relisted));
  }

  private async commitLocally(relisted: RemoteEntry[]): Promise<DayCopyOutcome> {
    this.progress.phase = 'committing';
    const now = new Map(relisted.filter((e) => e.type === 'file').map((e) => [e.path, e]));
    const unchanged = (file: RemoteEntry) => {
      const after = now.get(file.path);
      return after !== undefined && after.size === file.size && after.mtime === file.mtime;
    };
    const outcome: DayCopyOutcome = { committed: 0, bytesTransferred: 0, changed: [], failed: [], retryable: [] };
    // Synchronous renames, as rsync does them: microseconds each, no trip through the thread pool.
    for (const s of this.staged) {
      const partial = this.partialPathOf(s);
      if (!unchanged(s.file)) {
        rmSync(partial, { force: true });
        outcome.changed.push(s.file.path);
        continue;
      }
      try {
        const localPath = this.local.pathOf(s.file.path); // its folder was made and checked by prepareParent
        const keptAside = this.stored.has(s.file.path)
          ? await keepLongerBackup({
              localPath,
              relativePath: s.file.path,
              sourceSize: s.file.size,
              destinationRoot: this.supim.destinationRoot,
              day: this.result.day.label,
              now: this.now(),
              mode: this.mode,
            })
          : undefined;
        if (keptAside) this.noteSuperseded(keptAside);
        if (!s.mtimeSet) utimesSync(partial, s.file.mtime, s.file.mtime);
        renameSync(partial, localPath);
      } catch (err) {
        this.problems.set(s.file.path, err); // e.g. a folder where the file should go
        continue;
      }
      outcome.committed += 1;
      outcome.bytesTransferred += s.bytesTransferred;
    }
    // Every file that went wrong was one stage() was asked for; looked up among those alone.
    const listedOf = new Map<string, RemoteEntry>();
    if (this.problems.size > 0) for (const f of this.files) if (this.problems.has(f.path)) listedOf.set(f.path, f);
    for (const [path, error] of this.problems) {
      const listed = listedOf.get(path);
      const reason = permanentReason(error);
      if (listed && unchanged(listed) && !reason) {
        outcome.retryable.push({ path, reason: (error as Error).message }); // its partial file is resumed
        continue;
      }
      if (!listed || !unchanged(listed)) outcome.changed.push(path);
      else outcome.failed.push({ path, reason: reason! });
      await this.dropPartial(path);
    }
    // Only what a retry resumes stays in the heartbeats.
    const resumed = new Set(outcome.retryable.map((r) => r.path));
    const kept = this.progress.inFlight.filter((slot) => resumed.has(slot.path));
    this.progress.inFlight.splice(0, this.progress.inFlight.length, ...kept);
    // A streamed file that was not committed is streamed again next time; what a retry resumes is kept.
    await this.staging?.remove(resumed);
    return outcome;
  }

  /** Names a copy kept under `.superseded/` in the result, a bounded few of them; counts them all. */
  private noteSuperseded(line: string): void {
    const { result } = this;
    result.supersededCount = (result.supersededCount ?? result.superseded.length) + 1;
    if (result.superseded.length < MAX_SUPERSEDED_LISTED) result.superseded.push(line);
  }

  /** Where a staged file waits for its real name. */
  private partialPathOf(s: Staged): string {
    return typeof s.partial === 'string'
      ? s.partial
      : this.stagingArea.pathFor(s.partial % this.stagingArea.lanes, s.partial);
  }

  /** Removes what a failed copy left in its partial file (nothing a later attempt resumes). */
  private async dropPartial(path: string): Promise<void> {
    if (this.staging) await rm(this.staging.resumePathFor(path), { force: true });
  }

  private get stagingArea(): DayStaging {
    if (!this.staging) throw new Error('DayCopy: stage() prepares the staging folder first');
    return this.staging;
  }

  /** Runs one file's copy; its failure is kept for commit() to judge, unless the whole activity is cancelled. */
  private async isolated<T>(file: RemoteEntry, work: () => Promise<T>): Promise<T | undefined> {
    try {
      return await work();
    } catch (err) {
      if (this.signal.aborted) throw err;
      this.problems.set(file.path, err);
      return undefined;
    }
  }

  private async sftpLanes(files: RemoteEntry[], lanes: number): Promise<void> {
    if (files.length > 0) this.readOneByOne = true;
    const queue = [...files];
    const drain = async () => {
      for (let file = queue.shift(); file && !this.signal.aborted; file = queue.shift()) {
        const next = file;
        await this.isolated(next, () => this.fetchOne(next));
      }
    };
    await Promise.all(Array.from({ length: Math.min(lanes, queue.length) }, drain));
  }

  private async fetchOne(file: RemoteEntry): Promise<void> {
    const localPath = await this.local.prepareParent(file.path);
    const before = this.resumable.get(file.path);
    const resumeFrom = before && before.size === file.size && before.mtime === file.mtime ? before.offset : 0;
    // A large file's slot stays until commit: a crash before the rename resumes from the whole partial file.
    // A small one's goes once it is fetched (fetching it again costs one round trip): the heartbeats, sent
    // every second, do not grow with a day's files when they go one by one (a refused tar stream).
    const slot = { path: file.path, size: file.size, mtime: file.mtime, offset: resumeFrom };
    this.progress.inFlight.push(slot);
    const fetched = await fetchRemoteFile({
      ssh: this.ssh,
      via: 'sftp',
      remotePath: `${this.source}/${file.path}`,
      localPath,
      partialPath: this.stagingArea.resumePathFor(file.path),
      size: file.size,
      resumeFrom,
      sha256: this.hashing,
      transfer: this.transfer,
      fileMode: this.mode,
      keepPartial: true,
      signal: this.signal,
      onProgress: (done) => {
        this.progress.bytesDone += done - slot.offset;
        slot.offset = done; // the periodic heartbeat (whileHeartbeating) reports it
      },
    });
    this.progress.filesDone += 1;
    if (file.size <= this.smallFileBytes) this.progress.inFlight.splice(this.progress.inFlight.indexOf(slot), 1);
    const { partial, sha256, bytesTransferred } = fetched;
    this.staged.push({ file, partial, sha256, bytesTransferred });
  }

  /**
   * Streams small files as `tar cf -` of their names (a batch per command line), writing each to its
   * staging name as it arrives, then flushes them all at once. Only entries that are exactly the files
   * asked for, as regular files of the listed size, are written: the stream's names are never trusted.
   * Returns the files that did not arrive (unreadable, vanished, or the stream was refused): each is
   * then fetched on its own, which names its error.
   */
  private async tarStream(files: RemoteEntry[], listAfterLast: boolean): Promise<RemoteEntry[]> {
    if (files.length === 0) return [];
    const left: RemoteEntry[] = [];
    const writer = new SmallFileWriter(this.stagingArea.lanes);
    this.streamCap = new RateCap(this.transfer.maxBytesPerSecond);
    this.streamedBytes = 0;
    // Each batch is a command of its own: the next one starts while one streams, so the host never waits
    // for a command to start (TAR_STREAMS at once); the one that lists the folder after it waits for all others.
    const tasks = new BoundedTasks();
    const batches = tarBatches(files);
    try {
      for (const [i, batch] of batches.entries()) {
        if (this.signal.aborted || tasks.failure !== undefined) break;
        const listAfter = listAfterLast && i === batches.length - 1;
        await tasks.start(listAfter ? 1 : TAR_STREAMS, async () => {
          left.push(...(await this.tarBatch(writer, batch, listAfter)));
        });
      }
    } finally {
      await tasks.settle();
      await writer.close();
    }
    if (tasks.failure !== undefined) throw tasks.failure;
    return left;
  }

  /** One batch's tar stream (tarBatchCommand), its files handed to the writer; returns those it did not hold. */
  private async tarBatch(writer: SmallFileWriter, batch: RemoteEntry[], listAfter: boolean): Promise<RemoteEntry[]> {
    const wanted = new Map(batch.map((f) => [f.path, f]));
    const command = tarBatchCommand(this.source, batch, listAfter);
    const { stdout, finished } = await this.ssh.execStream({ shell: command });
    const onAbort = () => stdout.destroy();
    this.signal.addEventListener('abort', onAbort, { once: true });
    let refused = false;
    // The listing that follows the archive is parsed as it arrives (within the parser's caps).
    const listing = listAfter ? new TreeListingParser(this.ssh.label, this.source) : undefined;
    const entries = tarEntries(stdout as AsyncIterable<Buffer>, {
      maxFileBytes: this.smallFileBytes,
      ...(listing ? { trailer: (chunk: Buffer) => void listing.push(chunk) } : {}),
    });
    let ended = false;
    // Written by the writer's threads while the stream goes on; each settles into staged or problems. Only
    // those not settled yet are held (as many as the writer takes in flight, not a batch's thousands).
    const written = new Set<Promise<unknown>>();
    try {
      for (let next = await entries.next(); ; next = await entries.next()) {
        if (next.done) {
          ended = true;
          break;
        }
        const entry = next.value;
        const file = wanted.get(entry.name.replace(/^\.\//, ''));
        if (file && entry.type === 'file' && entry.size !== file.size) {
          wanted.delete(file.path); // it changed since it was listed: the fresh listing will say so
          this.problems.set(file.path, new Error(`size changed since it was listed (${file.size} -> ${entry.size})`));
          continue;
        }
        if (!file || entry.type !== 'file') {
          refused = true; // not what was asked for: the rest go one by one
          break;
        }
        wanted.delete(file.path);
        const queued = await this.isolated(file, () => this.queueSmall(writer, file, entry.data));
        if (queued) {
          const settled = this.isolated(file, () => queued.staged);
          written.add(settled);
          const drop = () => written.delete(settled);
          settled.then(drop, drop);
        }
        this.streamedBytes += entry.size;
        await this.streamCap.hold(this.streamedBytes, this.signal);
        this.signal.throwIfAborted(); // what the stream had buffered is not written after a cancel
      }
    } catch (err) {
      if (this.signal.aborted) throw err;
      refused = true; // a malformed or broken stream; a cut link shows again in the next listing
    } finally {
      await Promise.allSettled([...written]);
      this.signal.removeEventListener('abort', onAbort);
      if (refused) stdout.destroy();
    }
    // Exit 1 (a file changed while read) and 2 (a file could not be read) leave the file out of the
    // stream: the fresh listing, or its one-by-one copy, says what became of it.
    const exit = await finished.catch(() => undefined);
    if (listing && ended && exit && !refused) this.listingAfterStream = entriesFromListing(exit.exitCode, listing);
    return [...wanted.values()];
  }

  /** Hands a file to a writer thread (waiting while they are busy); `staged` settles once it is written. */
  private async queueSmall(
    writer: SmallFileWriter,
    file: RemoteEntry,
    data: Buffer[],
  ): Promise<{ staged: Promise<void> }> {
    await this.local.prepareParent(file.path);
    const n = this.streamed++;
    const lane = n % writer.laneCount;
    const partial = this.stagingArea.pathFor(lane, n);
    const fileMode = { mode: this.mode, mtime: file.mtime, hashing: this.hashing };
    const { written } = await writer.write(lane, partial, data, fileMode);
    const staged = written.then((sha256) => {
      this.progress.filesDone += 1;
      this.progress.bytesDone += file.size;
      this.unflushed.push({ file, partial: n, sha256, mtimeSet: true, bytesTransferred: file.size });
    });
    staged.catch(() => undefined); // judged by isolated() in tarBatch
    return { staged };
  }
}
