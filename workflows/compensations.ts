import { CancellationScope } from '@temporalio/workflow';
import type { CompensationRun } from '../domain/weekly-summary';
import { failureText } from './failure-text';

/**
 * The saga's undo list. Push a compensation before a step that can half-succeed; call the function `push`
 * returns once the step's effect is confirmed. On any way out, `unwind` runs what is left.
 */
export class Compensations {
  private readonly stack: { name: string; undo: () => Promise<void> }[] = [];

  push(name: string, undo: () => Promise<void>): () => void {
    const entry = { name, undo };
    this.stack.push(entry);
    return () => {
      const at = this.stack.indexOf(entry);
      if (at >= 0) this.stack.splice(at, 1);
    };
  }

  /** Whether a compensation whose name starts so is waiting. */
  pending(namePrefix: string): boolean {
    return this.stack.some((entry) => entry.name.startsWith(namePrefix));
  }

  /**
   * Runs what is left, last pushed first, where no cancel reaches it. A failing compensation is recorded and
   * the others still run.
   */
  async unwind(): Promise<CompensationRun[]> {
    const runs: CompensationRun[] = [];
    await CancellationScope.nonCancellable(async () => {
      for (let entry = this.stack.pop(); entry; entry = this.stack.pop()) {
        try {
          await entry.undo();
          runs.push({ name: entry.name, ok: true });
        } catch (err) {
          runs.push({ name: entry.name, ok: false, error: failureText(err) });
        }
      }
    });
    return runs;
  }
}
