import { spawn } from 'node:child_process';
import { AdapterError } from '../adapter-error';

/**
 * Unpacks a tar file made by libguestfs' `tar-out` into an empty private folder, with GNU tar (argv, no
 * shell). The archive comes from a guest and is not trusted: GNU tar already refuses members with `..`,
 * strips a leading `/`, and extracts a symlink that could redirect a later member as a placeholder until
 * the end; files get our owner (`--no-same-owner`), the guest's modes (`-p`), their mtimes. What it
 * extracted is checked entry by entry afterwards (staged-tree.ts) before anything leaves `into`.
 */
export function extractTar(tarFile: string, into: string): Promise<void> {
  const args = [
    '-x',
    '-f',
    tarFile,
    '-C',
    into,
    '--no-same-owner',
    '--preserve-permissions',
    '--no-overwrite-dir',
    '--delay-directory-restore',
    '--warning=no-timestamp',
  ];
  return new Promise((resolve, reject) => {
    const child = spawn('tar', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => {
      if (stderr.length < 16 * 1024) stderr += c.toString('utf8');
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve();
      else
        reject(
          new AdapterError(
            `tar could not unpack the guest's folder: ${stderr.trim().split('\n').slice(-3).join('; ')}`,
            'permanent',
            'TarExtractError',
          ),
        );
    });
  });
}
