import { treeListingScript, type RemoteEntry } from '../ssh/remote-tree';
import { quote } from '../ssh/shell-quote';

/**
 * How a day's small files are asked for in `tar` streams: batches of names, each one remote command, at most
 * a few streaming at once.
 */

/** Names handed to one remote tar, in bytes of command line: far below any ARG_MAX or SSH request limit. */
const TAR_BATCH_ARGS = 64 << 10;
/** Tar commands streaming at once: two, so that one starts while the other streams. */
export const TAR_STREAMS = 2;

/** `files` cut into batches whose names take at most about TAR_BATCH_ARGS bytes of a command line. */
export function tarBatches(files: readonly RemoteEntry[]): RemoteEntry[][] {
  const batches: RemoteEntry[][] = [];
  for (let start = 0; start < files.length;) {
    const batch: RemoteEntry[] = [];
    for (let bytes = 0; start < files.length && bytes < TAR_BATCH_ARGS; start++) {
      batch.push(files[start]!);
      bytes += Buffer.byteLength(files[start]!.path) + 8;
    }
    batches.push(batch);
  }
  return batches;
}

/**
 * One `tar cf -` of a batch of names below `source`. With `listAfter`, the same command then lists the folder
 * (the listing follows the archive in the stream): the re-check after the copy costs no round trip.
 * --hard-dereference: a hard link comes as its data, not as a link entry; ./ keeps a leading dash a name;
 * -b 128: 64 KiB writes (-b 1, one write per 512 bytes, took half the remote CPU); the zero padding after
 * the end-of-archive blocks is skipped before the listing that follows.
 */
export function tarBatchCommand(source: string, batch: readonly RemoteEntry[], listAfter: boolean): string {
  const tar =
    'tar --format=gnu --hard-dereference --no-recursion -b 128 -cf - -- ' +
    batch.map((f) => quote(`./${f.path}`)).join(' ');
  return listAfter
    ? `cd ${quote(source)} || exit 1; ${tar}; ${treeListingScript(source)}`
    : `cd ${quote(source)} && exec ${tar}`;
}

/** Runs tasks at most `limit` at a time; the first failure is kept, and stops new tasks from starting. */
export class BoundedTasks {
  private readonly running = new Set<Promise<void>>();
  failure: unknown;

  /** Waits until fewer than `limit` run, then starts `task` (unless one failed). */
  async start(limit: number, task: () => Promise<void>): Promise<void> {
    while (this.running.size >= limit) await Promise.race(this.running);
    if (this.failure !== undefined) return;
    const settled: Promise<void> = task()
      .catch((err: unknown) => void (this.failure ??= err))
      .then(() => void this.running.delete(settled));
    this.running.add(settled);
  }

  /** Waits for every task started; none of them throws here (see `failure`). */
  async settle(): Promise<void> {
    await Promise.all(this.running);
  }
}
