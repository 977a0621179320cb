import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { quote } from '../../adapters/ssh/shell-quote';

export interface ReadMeter {
  /** The environment to give the sessions that run the program (put it first on PATH). */
  env: Record<string, string>;
  /** Each run since the last `reset`: bytes it read (rchar: files and sockets) and its last argument. */
  reads(): { bytes: number; lastArgument: string }[];
  reset(): void;
}

/**
 * Counts what a program reads, each run: a wrapper of that name first on PATH runs the real program as its
 * child, and once it has reaped it reads its own /proc/<pid>/io, where Linux has added the child's counters.
 * The child gets its own PID in LISTEN_PID, so systemd socket activation (nbdcopy's `[ qemu-nbd ... ]`)
 * still works; a SIGTERM to the wrapper (how libnbd ends its server) waits for the child's exit.
 */
export function readMeter(dir: string, program: string): ReadMeter {
  const real = (process.env.PATH ?? '')
    .split(delimiter)
    .map((folder) => join(folder, program))
    .find((path) => existsSync(path));
  if (!real) throw new Error(`${program} is not on PATH`);
  const bin = join(dir, 'bin');
  const log = join(dir, `${program}.reads`);
  mkdirSync(bin, { recursive: true });
  const wrapper = join(bin, program);
  writeFileSync(
    wrapper,
    [
      '#!/bin/bash',
      'trap : TERM',
      `( export LISTEN_PID=$BASHPID; exec ${quote(real)} "$@" ); rc=$?`,
      `printf '%s\\t%s\\n' "$(sed -n 's/^rchar: //p' /proc/$$/io)" "\${@: -1}" >> ${quote(log)}`,
      'exit $rc',
      '',
    ].join('\n'),
  );
  chmodSync(wrapper, 0o755);
  return {
    env: { PATH: [bin, process.env.PATH].join(delimiter) },
    reads: () =>
      (existsSync(log) ? readFileSync(log, 'utf8') : '')
        .split('\n')
        .filter(Boolean)
        .map((line) => {
          const [bytes, lastArgument] = line.split('\t');
          return { bytes: Number(bytes), lastArgument: lastArgument ?? '' };
        }),
    reset: () => rmSync(log, { force: true }),
  };
}
