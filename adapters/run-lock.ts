import type { RunRef } from '../domain/vm-contracts';

export type { RunRef };

/** What a lock file holds. */
export interface LockRecord {
  owner: RunRef;
  since: string;
}

/** `tookOverFrom`: the closed run whose lock this one took over (it may have left work half done). */
export type LockOutcome<R extends LockRecord> = { acquired: true; tookOverFrom?: R } | { acquired: false; holder: R };

/** The few file operations a lock needs, wherever the file lives (the hypervisor over SSH, the store). */
export interface LockFile {
  /** Creates the file with this content only if it does not exist (O_EXCL); false if it existed. */
  create(content: string): Promise<boolean>;
  read(): Promise<string | undefined>;
  /** Replaces the file whole (write elsewhere, rename over). */
  replace(content: string): Promise<void>;
  remove(): Promise<void>;
}

function sameRun(a: RunRef, b: RunRef): boolean {
  return a.workflowId === b.workflowId && a.runId === b.runId;
}

/** A record file's content; a torn one reads as absent: it never keeps work from being done. */
export function parseRecord<R>(text: string | undefined): R | undefined {
  try {
    return text === undefined ? undefined : (JSON.parse(text) as R);
  } catch {
    return undefined;
  }
}

/**
 * One run at a time: taken atomically; a lock this run holds is fine; one held by a run that is closed
 * (terminated, timed out, failed, finished: `isClosed`) is taken over.
 */
export async function takeLock<R extends LockRecord>(
  file: LockFile,
  mine: R,
  isClosed: (holder: RunRef) => Promise<boolean>,
): Promise<LockOutcome<R>> {
  if (await file.create(JSON.stringify(mine))) return { acquired: true };
  const holder = parseRecord<R>(await file.read());
  if (holder && sameRun(holder.owner, mine.owner)) return { acquired: true };
  if (holder && !(await isClosed(holder.owner))) return { acquired: false, holder };
  await file.replace(JSON.stringify(mine));
  // Two runs taking over at once: the last write wins, and the other sees it is not the holder.
  const now = parseRecord<R>(await file.read());
  if (!now || !sameRun(now.owner, mine.owner)) return { acquired: false, holder: now ?? mine };
  return holder ? { acquired: true, tookOverFrom: holder } : { acquired: true };
}

/** Releases the lock if this run holds it (a lock taken over by another run stays theirs). */
export async function releaseLock(file: LockFile, owner: RunRef): Promise<void> {
  const holder = parseRecord<LockRecord>(await file.read());
  if (!holder || sameRun(holder.owner, owner)) await file.remove();
}
