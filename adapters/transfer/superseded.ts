import { rename } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileStamp } from '../../domain/format';
import { makeFolders, type StoreFileMode } from '../local/file-mode';
import { localFileState } from '../local/local-tree';

/** A stored file that a shorter source copy would replace: where it goes instead of being overwritten. */
export interface SupersededFile {
  /** The stored copy. */
  localPath: string;
  /** The file's path in the day, and the size of the source copy about to replace it. */
  relativePath: string;
  sourceSize: number;
  destinationRoot: string;
  /** The day's label (yyyy-ddd). */
  day: string;
  now: Date;
  mode: StoreFileMode;
}

/**
 * Never lets a shorter source file silently replace a longer backup: the stored copy is moved to
 * `<destinationRoot>/.superseded/<day>/<stamp>/<path>`. Returns the line for the day's result, or undefined
 * when there was nothing longer to keep.
 */
export async function keepLongerBackup(file: SupersededFile): Promise<string | undefined> {
  const existing = localFileState(file.localPath);
  if (!existing || existing.size <= file.sourceSize) return undefined;
  const keptAs = join(file.destinationRoot, '.superseded', file.day, fileStamp(file.now), file.relativePath);
  await makeFolders(dirname(keptAs), file.mode);
  await rename(file.localPath, keptAs);
  return `${file.relativePath} (${existing.size} bytes, kept at ${keptAs})`;
}
