import { quote } from './shell-quote';
import type { SshSession } from './ssh-session';

/**
 * A long remote command (qemu-img, cp, a checksum) that must end with its step. Closing the SSH channel does
 * not stop it (no terminal, no SIGHUP), so it runs in a process group of its own whose ID is written to
 * `pidFile`, bounded by `timeout` on the hypervisor even if nobody is left to end it.
 */
export interface TrackedCommand {
  /** Where the process group's ID is kept while it runs: one per image, so a retry finds an earlier copy. */
  pidFile: string;
  /** A shell script made of quoted words. */
  script: string;
  /** The hypervisor ends it after this long, whatever happens to the worker. */
  timeoutSeconds: number;
  /** What it does, for messages. */
  label: string;
}

/** Bytes the process group has read so far (/proc/<pid>/io), and the size of the file it writes, if any. */
export interface RemoteProgress {
  readBytes: number;
  writtenBytes: number;
}

/** Shell lines that end the process group recorded in the pid file (if any) and wait until it is gone. */
function endGroupScript(pidFile: string): string {
  const pf = quote(pidFile);
  return [
    `if [ -s ${pf} ]; then`,
    `  pg=$(cat ${pf})`,
    '  kill -TERM -- "-$pg" 2>/dev/null && kill -CONT -- "-$pg" 2>/dev/null || true', // a stopped (frozen) copy must see it
    '  n=0; while kill -0 -- "-$pg" 2>/dev/null && [ $n -lt 100 ]; do sleep 0.1; n=$((n+1)); done',
    '  kill -KILL -- "-$pg" 2>/dev/null || true',
    `  rm -f ${pf}`,
    'fi',
  ].join('\n');
}

/**
 * Runs the command; an earlier run with the same pid file (a retry after a lost worker) is ended first.
 * When `signal` aborts, the remote process group is ended before this returns (rejecting).
 */
export async function runTracked(ssh: SshSession, command: TrackedCommand, signal?: AbortSignal): Promise<Buffer> {
  const script = [
    endGroupScript(command.pidFile),
    // setsid: a new process group; timeout: bounded even if the worker is gone. The pid file goes once it ends.
    `setsid --wait sh -c 'echo $$ > "$0"; exec timeout --kill-after=10 "$1" sh -c "$2"' ${quote(command.pidFile)} ${quote(
      `${Math.max(1, Math.ceil(command.timeoutSeconds))}s`,
    )} ${quote(command.script)}`,
    'rc=$?',
    `rm -f ${quote(command.pidFile)}`,
    'exit $rc',
  ].join('\n');
  // sshd closes the channel only once the command has exited: a hung (or frozen) copy would keep it open for
  // ever. So an abort ends the process group at once, over a channel of its own.
  let ending: Promise<void> | undefined;
  const onAbort = () => {
    ending = endTracked(ssh, command.pidFile).catch(() => undefined);
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    return await ssh.run({ shell: script }, { signal, label: command.label });
  } finally {
    signal?.removeEventListener('abort', onAbort);
    await ending;
  }
}

/** Ends a tracked command still running (from this or an earlier attempt); fine when none runs. */
export async function endTracked(ssh: SshSession, pidFile: string): Promise<void> {
  await ssh.run({ shell: endGroupScript(pidFile) });
}

/** Progress of a tracked command, or undefined when it is not running (yet, or any more). */
export async function trackedProgress(
  ssh: SshSession,
  pidFile: string,
  writes?: string,
): Promise<RemoteProgress | undefined> {
  const pf = quote(pidFile);
  const out = await ssh.run({
    shell: [
      `[ -s ${pf} ] || exit 0`,
      `for p in $(pgrep -g "$(cat ${pf})"); do sed -n 's/^rchar: //p' /proc/$p/io 2>/dev/null; done | awk '{s+=$1} END {print "read " s+0}'`,
      writes ? `stat -c 'written %s' ${quote(writes)} 2>/dev/null || true` : 'true',
    ].join('\n'),
  });
  const text = out.toString('utf8');
  const read = /read (\d+)/.exec(text);
  if (!read) return undefined;
  return { readBytes: Number(read[1]), writtenBytes: Number(/written (\d+)/.exec(text)?.[1] ?? 0) };
}
