/**
 * One remote command in a process of its own, so that a test can watch its memory (and kill it):
 *   node listing-in-child.js <host.json> list|run
 * list: the remote tree listing of /; run: the command's whole output. Prints the outcome as one JSON line.
 */
import { readFileSync } from 'node:fs';
import { ApplicationFailure } from '@temporalio/common';
import { listRemoteTree } from '../../adapters/ssh/remote-tree';
import { withSsh } from '../../adapters/ssh/ssh-session';
import type { HostConfig } from '../../config/schema';

async function main(): Promise<void> {
  const [hostFile = '', what = ''] = process.argv.slice(2);
  const host = JSON.parse(readFileSync(hostFile, 'utf8')) as HostConfig;
  try {
    await withSsh('endless', host, async (ssh) => {
      if (what === 'list') await listRemoteTree(ssh, '/');
      else await ssh.run(['true']);
    });
    process.stdout.write(`${JSON.stringify({ ok: true })}\n`);
  } catch (err) {
    const e = err as Error;
    const failure = err instanceof ApplicationFailure ? { type: err.type, nonRetryable: err.nonRetryable } : {};
    process.stdout.write(`${JSON.stringify({ ok: false, message: e.message, ...failure })}\n`);
  }
}

void main();
