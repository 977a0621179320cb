import { ApplicationFailure } from '@temporalio/common';

/**
 * What went wrong talking to a remote host. The kind alone decides whether Temporal may retry:
 * see `isRetryable`, the one place that makes that call.
 */
export type RemoteFailureKind =
  | 'connect' // refused, timed out, reset, keepalive lost: the link may come back
  | 'stalled' // the host answers keepalives but its command sent nothing for too long: it may recover
  | 'host-key' // unknown or changed host key: a human must look
  | 'auth' // key refused or unreadable: a human must look
  | 'command' // the remote command exited non-zero (see exitCode/stderr)
  | 'transfer' // a read or stream broke mid-file, or the bytes did not add up
  | 'unsafe-remote-data' // the remote sent a path or name we refuse to act on
  | 'not-found'; // the thing asked for (a VM, a file) does not exist: retrying will not make it

export interface RemoteFailureDetails {
  kind: RemoteFailureKind;
  host: string;
  command?: string;
  exitCode?: number | null;
  signal?: string | null;
  /** Trimmed: it goes into Temporal history and reports. */
  stderr?: string;
}

const STDERR_LIMIT = 2000;
/**
 * "The service is not there right now": libvirtd restarting (its socket missing or refusing), a daemon or
 * link timing out. These often contain words of the permanent list below ("No such file or directory" of a
 * missing socket), so they are checked first.
 */
const TRANSIENT_STDERR =
  /failed to connect socket to [^\n]*: (no such file or directory|connection refused)|cannot recv data|end of file while reading data|client socket is closed|connection reset by peer|timed out|timeout was reached|resource temporarily unavailable|cannot acquire state change lock|failed to get [^\n]*lock/i;
/** Messages that no retry will change. */
const PERMANENT_STDERR =
  /permission denied|no such file or directory|not a directory|invalid option|unrecognized option|operation not permitted|read-only file system/i;

export function isRetryable(details: RemoteFailureDetails): boolean {
  switch (details.kind) {
    case 'connect':
    case 'stalled':
    case 'transfer':
      return true;
    case 'host-key':
    case 'auth':
    case 'unsafe-remote-data':
    case 'not-found':
      return false;
    case 'command':
      if (details.signal) return true;
      if (details.exitCode === 126 || details.exitCode === 127) return false; // not executable / not found
      if (TRANSIENT_STDERR.test(details.stderr ?? '')) return true;
      return !PERMANENT_STDERR.test(details.stderr ?? '');
  }
}

/**
 * libvirtd itself not answering (restarting, its socket gone or refusing): virsh's own words. A guest runs on
 * meanwhile, so the step waits for libvirtd rather than failing.
 */
const LIBVIRTD_DOWN =
  /failed to connect (socket )?to the hypervisor|failed to connect socket to [^\n]*: (no such file or directory|connection refused)|cannot recv data|end of file while reading data|client socket is closed|connection reset by peer|unable to connect to server/i;

/**
 * The hypervisor is out for now (SSH refused, timed out or cut; libvirtd down or restarting), as opposed to
 * a command that failed on a hypervisor that answered: every step waits the first kind out
 * (hypervisorOutageSeconds) and fails the second as it always did. Host keys and keys refused are not
 * outages: a human must look.
 */
export function isHypervisorOutage(details: RemoteFailureDetails): boolean {
  if (details.kind === 'connect') return true;
  return details.kind === 'command' && !details.signal && LIBVIRTD_DOWN.test(details.stderr ?? '');
}

export class RemoteCommandError extends ApplicationFailure {
  readonly remote: RemoteFailureDetails;

  constructor(message: string, details: RemoteFailureDetails, cause?: Error) {
    const remote = { ...details, stderr: trimStderr(details.stderr) };
    super(message, `Remote${capitalise(details.kind)}Error`, !isRetryable(remote), [remote], cause);
    this.remote = remote;
  }
}

function capitalise(kind: string): string {
  return kind
    .split('-')
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join('');
}

function trimStderr(stderr: string | undefined): string | undefined {
  if (stderr === undefined) return undefined;
  const trimmed = stderr.trim();
  return trimmed.length > STDERR_LIMIT ? `${trimmed.slice(0, STDERR_LIMIT)}… (${trimmed.length} chars)` : trimmed;
}
