import { condition, setHandler, type CancellationScope } from '@temporalio/workflow';
import { abortUpdate, type AbortAnswer } from '../definitions';

/**
 * The `abort` update of a workflow that changes VMs: the first reason is kept, `work` is cancelled (its
 * compensations put the VMs back), and the answer waits until the run says it has finished putting back.
 */
export class AbortHandler {
  private reasonGiven?: string;
  private done = false;

  constructor(work: CancellationScope, running: () => string[], onAbort: (reason: string) => void = () => undefined) {
    setHandler(
      abortUpdate,
      async (reason: string): Promise<AbortAnswer> => {
        if (this.reasonGiven === undefined) {
          this.reasonGiven = reason.trim() || 'aborted by an operator';
          onAbort(this.reasonGiven);
        }
        work.cancel();
        await condition(() => this.done);
        return { acknowledged: true, reason: this.reasonGiven, running: running() };
      },
      {
        validator: (reason: string) => {
          if (typeof reason !== 'string') throw new Error('the reason must be text');
        },
      },
    );
  }

  /** The operator's reason, once aborted. */
  get reason(): string | undefined {
    return this.reasonGiven;
  }

  /** Everything is put back: the update's answer may go. */
  finished(): void {
    this.done = true;
  }
}
