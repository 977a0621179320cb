import { ApplicationFailure } from '@temporalio/common';
import { AdapterError } from '../adapters/adapter-error';

/** A failure retrying cannot fix (a refused request, a damaged set), with its type for the workflow. */
export function refuse(message: string, type: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(message, type);
}

/** A dependency the worker did not give this activity (a Temporal client): retried, as before, with its type. */
export function missingDependency(message: string): ApplicationFailure {
  return ApplicationFailure.retryable(message, 'MissingDependency');
}

/**
 * The activity edge: an adapter's plain error becomes a typed ApplicationFailure, retryable only when its
 * kind is transient. Anything else passes as it is.
 */
export function typedFailure(err: unknown): unknown {
  if (!(err instanceof AdapterError)) return err;
  return ApplicationFailure.create({
    message: err.message,
    type: err.type,
    nonRetryable: !err.retryable,
    cause: err,
  });
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any activity's own parameters
type Activity = (...args: any[]) => Promise<unknown>;

/** Every activity of `activities`, its failures passed through typedFailure. Names and signatures unchanged. */
export function atActivityEdge<T extends Record<string, Activity>>(activities: T): T {
  const wrapped: Record<string, Activity> = {};
  for (const [name, activity] of Object.entries(activities)) {
    wrapped[name] = async (...args: unknown[]) => {
      try {
        return await activity(...args);
      } catch (err) {
        throw typedFailure(err);
      }
    };
  }
  return wrapped as T;
}
