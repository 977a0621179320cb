import { spawn, type ChildProcess, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { AdapterError } from '../adapter-error';
import { readSecretFileSync, SecretFileExposedError } from '../local/secret-file';
import { resticError } from './restic-errors';

/** How restic is started: the repository and password file go in the environment, never in argv. */
export interface ResticEnv {
  repository: string;
  passwordFile: string;
  cacheDir?: string;
  env?: Record<string, string>;
  /** HTTP basic auth of a REST repository: its password goes into RESTIC_REPOSITORY only (restic prints it as ***). */
  httpAuth?: { user: string; passwordFile: string };
}

/**
 * The location restic is given: `repository` with the REST server's user and password put in, read from
 * its secret file (refused when others may read it). Only restic's environment ever holds it.
 */
export function resticLocation(options: ResticEnv): string {
  const auth = options.httpAuth;
  if (!auth) return options.repository;
  const m = /^(rest:https?:\/\/)(.*)$/.exec(options.repository);
  if (!m) throw new AdapterError('HTTP auth is for REST repositories only', 'refused', 'ResticArgumentError');
  let password: string;
  try {
    password = readSecretFileSync(auth.passwordFile, 'REST server password file').toString('utf8').split(/\r?\n/)[0]!;
  } catch (error) {
    const exposed = error instanceof SecretFileExposedError;
    throw new AdapterError(
      exposed ? error.message : `REST server password file ${auth.passwordFile} cannot be read`,
      exposed ? 'auth' : 'permanent',
      exposed ? 'ResticPasswordFileExposedError' : 'ResticPasswordFileError',
      { cause: error },
    );
  }
  return `${m[1]}${encodeURIComponent(auth.user)}:${encodeURIComponent(password)}@${m[2]}`;
}

/** The bytes of stderr kept to explain a failure. */
const STDERR_KEEP = 64 * 1024;

/** restic's argv: the cache option first, then the subcommand's words (an array: no shell ever). */
export function resticArgs(options: ResticEnv, args: string[]): string[] {
  const cache = options.cacheDir ? ['--cache-dir', options.cacheDir] : ['--no-cache'];
  return [...cache, ...args];
}

/** Starts restic; stdin is a pipe the caller writes or ends. */
export function startRestic(options: ResticEnv, args: string[]): ChildProcessWithoutNullStreams {
  const inherited: NodeJS.ProcessEnv = { ...process.env };
  // A password given any other way would win over the file (and could reach a log): none is passed on;
  // nor a source repository (copy, init --copy-chunker-params) other than the one options.env names.
  for (const name of [
    'RESTIC_PASSWORD',
    'RESTIC_PASSWORD_COMMAND',
    'RESTIC_REPOSITORY_FILE',
    'RESTIC_FROM_PASSWORD',
    'RESTIC_FROM_PASSWORD_COMMAND',
    'RESTIC_FROM_PASSWORD_FILE',
    'RESTIC_FROM_REPOSITORY',
    'RESTIC_FROM_REPOSITORY_FILE',
  ])
    delete inherited[name];
  const env: NodeJS.ProcessEnv = {
    ...inherited,
    ...options.env,
    RESTIC_REPOSITORY: resticLocation(options),
    RESTIC_PASSWORD_FILE: options.passwordFile,
  };
  delete env.RESTIC_PASSWORD;
  delete env.RESTIC_PASSWORD_COMMAND;
  delete env.RESTIC_REPOSITORY_FILE;
  return spawn('restic', resticArgs(options, args), { env, stdio: ['pipe', 'pipe', 'pipe'] });
}

/** Collects a bounded tail of a stream's text. */
export function tailCollector(max = STDERR_KEEP): { add(chunk: Buffer): void; text(): string } {
  let text = '';
  return {
    add(chunk) {
      text += chunk.toString('utf8');
      if (text.length > max) text = text.slice(-max);
    },
    text: () => text,
  };
}

export interface ResticRun {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

/** How long an interrupted restic may take to remove its lock (retrying a server that is gone) before it is killed. */
const KILL_GRACE_MS = 5000;

/**
 * Stops a restic: SIGINT (it cancels and removes its lock), then SIGKILL after KILL_GRACE_MS (a restic waiting
 * on a server that never answers may not stop on SIGINT alone; the lock it leaves is stale, and the next
 * `restic unlock` removes it). Returns the kill timer, for the caller to clear once restic has ended.
 */
export function interruptRestic(child: ChildProcess): NodeJS.Timeout {
  child.kill('SIGINT');
  return setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
}

/** Runs restic to its end, with stdin closed; the output as text. Never throws on an exit code. */
export function runRestic(options: ResticEnv, args: string[], signal?: AbortSignal): Promise<ResticRun> {
  return new Promise((resolve, reject) => {
    const child = startRestic(options, args);
    const out: Buffer[] = [];
    const err = tailCollector();
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.add(chunk));
    child.stdin.on('error', () => {}); // restic may exit before reading stdin
    child.stdin.end();
    let killTimer: NodeJS.Timeout | undefined;
    const abort = () => (killTimer = interruptRestic(child));
    signal?.addEventListener('abort', abort, { once: true });
    child.on('error', reject);
    child.on('close', (code, sig) => {
      clearTimeout(killTimer);
      signal?.removeEventListener('abort', abort);
      resolve({ code, signal: sig, stdout: Buffer.concat(out).toString('utf8'), stderr: err.text() });
    });
  });
}

/** runRestic that throws the classified AdapterError unless restic exits 0. */
export async function runResticOk(options: ResticEnv, args: string[], signal?: AbortSignal): Promise<ResticRun> {
  const run = await runRestic(options, args, signal);
  if (run.code !== 0) throw resticError(args[0] ?? '', run.code, run.signal, run.stderr);
  return run;
}
