/**
 * How an adapter says what went wrong, without knowing about Temporal: the kind decides whether retrying
 * may help (only `transient`), the type names the failure for the workflow and the report. The activity
 * edge (activities/failures.ts) turns it into a typed ApplicationFailure.
 */
export type AdapterErrorKind =
  | 'transient' // the next attempt may succeed (network, a 4xx from a server, a host restarting)
  | 'permanent' // the same request fails the same way again
  | 'auth' // credentials refused or unsafe: a human must look
  | 'refused'; // the adapter will not do it (unsafe input or state)

export class AdapterError extends Error {
  override name = 'AdapterError';

  constructor(
    message: string,
    readonly kind: AdapterErrorKind,
    /** The failure's type as workflows and reports see it, e.g. MailAuthError. */
    readonly type: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  get retryable(): boolean {
    return this.kind === 'transient';
  }
}
