import { CancellationScope } from '@temporalio/workflow';
import type { CompensationRun } from '../../domain/weekly-summary';
import { failureText } from '../failure-text';

/** What an undo puts back; lookups go by kind, never by the label an operator reads. */
export type CompensationKind =
  | 'unlock' // the VM lock is released
  | 'restart' // the VM is started again (or a shutdown under way is watched and then undone)
  | 'discard' // partial or pushed images are removed, remote copies ended
  | 'merge' // overlays are merged back into the disks
  | 'put-back' // the original disks are moved back under their names
  | 'on-exit'; // not an undo: work every way out runs at this depth (recorded only if it fails)

/** One pushed entry: `drop()` once the step's effect is confirmed and there is nothing to undo. */
export interface Pushed {
  drop(): void;
}

interface Entry {
  kind: CompensationKind;
  label: string;
  undo: () => Promise<unknown>;
}

/**
 * The saga's undo stack. Push an undo before a step that can half-succeed, drop it once the step's effect
 * is confirmed; on every way out `unwind` runs what is left, last pushed first, where no cancel reaches it.
 */
export class Compensations {
  private readonly stack: Entry[] = [];
  private unwound: (CompensationRun & { kind: CompensationKind })[] = [];

  push(kind: CompensationKind, label: string, undo: () => Promise<unknown>): Pushed {
    const entry: Entry = { kind, label, undo };
    this.stack.push(entry);
    return { drop: () => this.remove(entry) };
  }

  /** Work that runs on every way out at this point of the unwind (after what is pushed later). */
  onExit(label: string, run: () => Promise<void>): Pushed {
    return this.push('on-exit', label, run);
  }

  /** Drops the newest entry of this kind, if any. */
  drop(kind: CompensationKind): void {
    const entry = lastOf(this.stack, (e) => e.kind === kind);
    if (entry) this.remove(entry);
  }

  /** Whether an undo of this kind is waiting. */
  pending(kind: CompensationKind): boolean {
    return this.stack.some((e) => e.kind === kind);
  }

  /** How the last unwind's undo of this kind went, if one ran. */
  ran(kind: CompensationKind): CompensationRun | undefined {
    const run = lastOf(this.unwound, (r) => r.kind === kind);
    return run && record(run);
  }

  /**
   * Runs every entry left, last pushed first, non-cancellable. Each outcome is recorded (ok, or failed with
   * the error's text); a failure does not skip the others. On-exit work is recorded only when it fails.
   */
  async unwind(): Promise<CompensationRun[]> {
    const runs: (CompensationRun & { kind: CompensationKind })[] = [];
    await CancellationScope.nonCancellable(async () => {
      for (let entry = this.stack.pop(); entry; entry = this.stack.pop()) {
        try {
          await entry.undo();
          runs.push({ kind: entry.kind, name: entry.label, ok: true });
        } catch (err) {
          runs.push({ kind: entry.kind, name: entry.label, ok: false, error: failureText(err) });
        }
      }
    });
    this.unwound = runs;
    return runs.filter((r) => r.kind !== 'on-exit' || !r.ok).map(record);
  }

  private remove(entry: Entry): void {
    const at = this.stack.indexOf(entry);
    if (at >= 0) this.stack.splice(at, 1);
  }
}

/** The recorded shape (the weekly reports render it): no kind. */
function record({ name, ok, error }: CompensationRun): CompensationRun {
  return error === undefined ? { name, ok } : { name, ok, error };
}

function lastOf<T>(items: T[], match: (item: T) => boolean): T | undefined {
  for (let i = items.length - 1; i >= 0; i--) if (match(items[i]!)) return items[i];
  return undefined;
}
