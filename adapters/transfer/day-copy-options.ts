import type { SupimConfig, TransferConfig } from '../../config/schema';
import type { DayResult } from '../../domain/daily-summary';
import type { StoreFileMode } from '../local/file-mode';
import type { LocalTree } from '../local/local-tree';
import type { RemoteEntry } from '../ssh/remote-tree';
import type { SshSession } from '../ssh/ssh-session';
import type { DayCopyProgress } from './day-copy-rules';

/**
 * A file written under a name not its own, waiting for its real name. Held for every file of a day until the
 * commit: no path strings (its real name is the listing's path under the day, a streamed file's staging name
 * its number), so 100,000 files cost little more than their listing.
 */
export interface Staged {
  file: RemoteEntry;
  /** A streamed file's number in the staging folder (see DayStaging.pathFor), or a fetched file's partial file. */
  partial: number | string;
  sha256?: string;
  /** The partial file already has the source's mtime. */
  mtimeSet?: boolean;
  /** Bytes fetched for it by this attempt (a resumed file: less than its size). */
  bytesTransferred: number;
}

/** What one day's copy works with. */
export interface DayCopyOptions {
  ssh: SshSession;
  /** The day's folder on the compute host. */
  source: string;
  /** The day's folder in the store. */
  local: LocalTree;
  /**
   * Files to copy that the day's folder held (in another version) when it was compared with the listing: the
   * only ones a copy can replace (under the day's lock no other run writes there), so the only ones whose
   * stored copy is looked at again before its replacement gets its name (see keepLongerBackup).
   */
  stored: ReadonlySet<string>;
  supim: SupimConfig;
  transfer: TransferConfig;
  /** Filled in as the copy goes. */
  result: DayResult;
  /** Reported in heartbeats; a retry resumes from it. */
  progress: DayCopyProgress;
  now: () => Date;
  signal: AbortSignal;
  mode: StoreFileMode;
  /** Flushes the store's file system (see syncFileSystem). */
  flushStore: (path: string) => Promise<void>;
  /** Runs a step that only waits on the store's disk (a stall watch does not count its time). */
  localStep: <T>(step: () => Promise<T>) => Promise<T>;
}
