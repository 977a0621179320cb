import { AdapterError } from '../adapter-error';

/** What went wrong in a restic run, read from its stderr (restic 0.14 has no distinct exit codes for it). */
export type ResticFailure = 'wrong-password' | 'no-repository' | 'locked' | 'unreachable' | 'other';

/** The AdapterError type each failure carries, as workflows and reports see it. */
export const RESTIC_ERROR_TYPES: Record<ResticFailure, string> = {
  'wrong-password': 'ResticWrongPasswordError',
  'no-repository': 'ResticRepositoryMissingError',
  locked: 'ResticLockedError',
  unreachable: 'ResticUnreachableError',
  other: 'ResticError',
};

/** Classifies restic's stderr; a lock held by another run is the only one worth retrying. */
export function classifyResticStderr(stderr: string): ResticFailure {
  if (/wrong password or no key found|unexpected HTTP response \(401\)/i.test(stderr)) return 'wrong-password';
  if (/unable to create lock|repository is already locked/i.test(stderr)) return 'locked';
  // A REST or SFTP repository whose server does not answer (before "Is there a repository" is printed too).
  if (
    /dial tcp .*(connection refused|i\/o timeout|no route to host)|no such host|connection reset by peer/i.test(stderr)
  )
    return 'unreachable';
  if (/Is there a repository at the following location\?|unable to open config file/i.test(stderr))
    return 'no-repository';
  return 'other';
}

const KINDS = {
  'wrong-password': 'auth',
  'no-repository': 'permanent',
  locked: 'transient',
  unreachable: 'transient',
  other: 'permanent',
} as const;

/** The last lines of restic's stderr, at most `max` characters (enough to say why, never the whole log). */
export function stderrTail(stderr: string, max = 2000): string {
  const text = stderr.trim();
  return text.length > max ? `…${text.slice(-max)}` : text;
}

/** The AdapterError for a failed restic run (`what`: the subcommand); the message holds the stderr tail. */
export function resticError(what: string, code: number | null, signal: string | null, stderr: string): AdapterError {
  const failure = classifyResticStderr(stderr);
  const how = signal ? `was ended by ${signal}` : `exited with code ${code}`;
  return new AdapterError(`restic ${what} ${how}: ${stderrTail(stderr)}`, KINDS[failure], RESTIC_ERROR_TYPES[failure]);
}

/** Whether an error is a restic failure of the given kind. */
export function isResticFailure(error: unknown, failure: ResticFailure): boolean {
  return error instanceof AdapterError && error.type === RESTIC_ERROR_TYPES[failure];
}
