import { setCurrentDetails } from '@temporalio/workflow';

/** Where a workflow's steps are shown: the progress its query returns. */
export interface StepProgress<S extends string> {
  step: S;
  stepStartedAt?: string;
  steps: { step: S; ms: number; startedAt?: string }[];
}

export interface StepperOptions {
  /** Each timing also carries when its step started (the weekly results do, the restore results do not). */
  withStartedAt?: boolean;
  /** Called when a step begins (e.g. to refresh the Web UI's current details); default: `<what>: <step>`. */
  changed?: () => void;
  /** What the default current details name (the VM). */
  what?: string;
}

/** Runs named steps: the current one in the progress, each one's duration in its timings. */
export class Stepper<S extends string> {
  constructor(
    private readonly progress: StepProgress<S>,
    private readonly options: StepperOptions = {},
  ) {}

  /** The step under way (or the last one that ran). */
  get current(): S {
    return this.progress.step;
  }

  async run<T>(name: S, work: () => Promise<T>): Promise<T> {
    const started = Date.now();
    const startedAt = new Date(started).toISOString();
    this.progress.step = name;
    if (this.options.withStartedAt) this.progress.stepStartedAt = startedAt;
    if (this.options.changed) this.options.changed();
    else setCurrentDetails(`${this.options.what ?? 'run'}: ${name}`);
    try {
      return await work();
    } finally {
      const ms = Date.now() - started;
      this.progress.steps.push(this.options.withStartedAt ? { step: name, startedAt, ms } : { step: name, ms });
    }
  }

  /** Marks the end (`done`), outside any step. */
  finish(done: S): void {
    this.progress.step = done;
    this.options.changed?.();
  }
}
