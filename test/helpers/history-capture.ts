import { writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { PROJECT_ROOT } from '../../scripts/sandbox/paths';

/** Where the histories that `npm test` replays are kept (committed). */
export const REPLAY_DIR = join(PROJECT_ROOT, 'test', 'replay');

/**
 * Whether CAPTURE_HISTORIES asks for the history `name`: `1` means every history, otherwise the value is a
 * comma-separated list of names (`weekly-ok,restore-vm-as`).
 */
export function capturing(name: string, setting = process.env.CAPTURE_HISTORIES): boolean {
  if (!setting) return false;
  if (setting.trim() === '1') return true;
  return setting
    .split(',')
    .map((s) => s.trim())
    .includes(name);
}

/** Where a run may have written: the machine's temporary folders, the checkout and the home folder. */
function machinePaths(): [RegExp, string][] {
  const escape = (path: string) => path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const end = '(?=[/"\'\\s]|$)';
  return [
    [new RegExp(`${escape(tmpdir())}/[^/"'\\s]+${end}`, 'g'), '/sandbox'],
    [new RegExp(`${escape(PROJECT_ROOT)}${end}`, 'g'), '/project'],
    [new RegExp(`${escape(homedir())}${end}`, 'g'), '~'],
  ];
}

/**
 * A history's JSON as it may be committed: every failure's stack trace blanked (a stack names the files of
 * the process that threw it, and replay never reads it), and the machine's paths (a test sandbox under the
 * temporary folder, the checkout, the home folder) replaced with neutral ones, in plain strings and in JSON
 * payloads alike. Replay compares the commands a workflow issues, never these values.
 */
export function forCommitting(json: string, paths = machinePaths()): string {
  const neutral = (text: string) => paths.reduce((t, [pattern, by]) => t.replace(pattern, by), text);
  /** A payload's bytes are rewritten only when they are text (JSON) holding such a path. */
  const payload = (data: string) => {
    const bytes = Buffer.from(data, 'base64');
    const text = bytes.toString('utf8');
    if (!Buffer.from(text).equals(bytes)) return data;
    const changed = neutral(text);
    return changed === text ? data : Buffer.from(changed).toString('base64');
  };
  const clean = (value: unknown, key?: string): unknown => {
    if (typeof value === 'string') {
      if (key === 'stackTrace') return '';
      return key === 'data' ? payload(value) : neutral(value);
    }
    if (Array.isArray(value)) return value.map((v) => clean(v));
    if (value === null || typeof value !== 'object') return value;
    return Object.fromEntries(Object.entries(value).map(([k, inner]) => [k, clean(inner, k)]));
  };
  return JSON.stringify(clean(JSON.parse(json)), null, 2);
}

/**
 * With CAPTURE_HISTORIES set (see `capturing`), saves the run's event history as test/replay/<name>.json: run
 * the tests that way once when a workflow change is meant to be incompatible (or a patched() is retired), or
 * to add a history of a new way out, and commit the files.
 */
export async function captureHistory(handle: WorkflowHandle, name: string): Promise<void> {
  if (!capturing(name)) return;
  const json = historyToJSON(await handle.fetchHistory());
  writeFileSync(join(REPLAY_DIR, `${name}.json`), forCommitting(json));
}
