import type { Hash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { Decompress } from 'fzstd';
import { RemoteCommandError } from './remote-command-error';
import { quote } from './shell-quote';
import type { SshSession } from './ssh-session';

export interface ZstdDownloadOptions {
  startOffset?: number;
  expectedSize: number;
  hash?: Hash;
  onProgress?: (bytesDone: number, bytesTotal: number) => void;
  signal?: AbortSignal;
}

/** Whether the remote host can compress with zstd. */
export async function remoteHasZstd(ssh: SshSession): Promise<boolean> {
  return (await ssh.exec({ shell: 'command -v zstd >/dev/null 2>&1' })).exitCode === 0;
}

/**
 * Copies a remote file compressed with zstd on the wire (`zstd -1` on the remote, decompressed here):
 * mostly-zero VM disks travel at a fraction of their size. The bytes written are the file's own bytes,
 * so the hash and the stored copy are the same as without compression. Resumes from `startOffset`.
 */
export async function zstdDownload(
  ssh: SshSession,
  remotePath: string,
  local: FileHandle,
  options: ZstdDownloadOptions,
): Promise<void> {
  const start = options.startOffset ?? 0;
  const source = start > 0 ? `tail -c +${start + 1} ${quote(remotePath)}` : `cat ${quote(remotePath)}`;
  const command = `${source} | zstd -q -1 -T0 -c`;
  const { stdout, finished } = await ssh.execStream({ shell: command });
  const fail = (message: string, cause?: Error) =>
    new RemoteCommandError(
      `${ssh.label}: ${remotePath}: ${message}`,
      { kind: 'transfer', host: ssh.label, command },
      cause,
    );

  let written = start;
  let pending: Uint8Array[] = [];
  const decompressor = new Decompress((chunk) => pending.push(chunk));
  const flush = async () => {
    const ready = pending;
    pending = [];
    for (const chunk of ready) {
      const bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      if (written + bytes.length > options.expectedSize)
        throw fail(`more data than the expected ${options.expectedSize} bytes`);
      await local.write(bytes, 0, bytes.length, written);
      options.hash?.update(bytes);
      written += bytes.length;
      options.onProgress?.(written, options.expectedSize);
    }
  };
  const onAbort = () => stdout.destroy(fail('cancelled'));
  options.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    for await (const chunk of stdout) {
      decompressor.push(chunk as Buffer);
      await flush();
    }
    decompressor.push(new Uint8Array(0), true);
    await flush();
  } catch (err) {
    throw err instanceof RemoteCommandError ? err : fail('stream broke', err as Error);
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
  }
  const result = await finished;
  if (result.exitCode !== 0) throw ssh.commandFailure(command, result, `compressing ${remotePath}`);
  if (written !== options.expectedSize) throw fail(`got ${written} bytes, expected ${options.expectedSize}`);
}
