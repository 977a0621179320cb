import { ApplicationFailure } from '@temporalio/common';

/** A job whose config section is absent fails at once and for good, saying which section to add. */
export function requireSection<T>(section: T | undefined, name: string): T {
  if (!section) throw ApplicationFailure.nonRetryable(`the config has no "${name}" section`, 'NotConfigured');
  return section;
}
