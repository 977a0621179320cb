import { ApplicationFailure } from '@temporalio/common';

/** A failure retrying cannot fix (a refused request, a damaged set), with its type for the workflow. */
export function refuse(message: string, type: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(message, type);
}
