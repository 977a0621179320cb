import { damagedPacks, type Restic } from './restic';
import { resticError } from './restic-errors';
import type { Snapshot } from './restic-json';
import { runRestic } from './restic-process';

/** What `restic check` read: one subset n/N of the packs, or all of them. */
export type CheckScope = { subset: number; of: number } | 'full';

/** A set (or its record) that a damaged pack breaks: the snapshot holds data of that pack. */
export interface BrokenSet {
  vm: string;
  stamp: string;
  /** The disk target, or `manifest` for the set's record. */
  disk: string;
  snapshot: string;
}

export interface DamagedPack {
  pack: string;
  /** The sets whose data or trees are in the pack; empty when no snapshot uses it. */
  sets: BrokenSet[];
  /** The SUPIM days (yyyy-ddd, tag day=) whose snapshots hold data of the pack. */
  days?: string[];
  /** Why the pack could not be mapped to what it breaks (restic find could not read it), when so. */
  unmapped?: string;
}

export interface RepositoryCheck {
  ok: boolean;
  scope: CheckScope;
  /** restic's own count: "read group #n of X data packs (out of total Y packs in N groups)". */
  packsRead?: number;
  packsTotal?: number;
  damaged: DamagedPack[];
  /** The last lines of restic's output when not ok (what a human reads next). */
  outputTail: string;
}

/** At most this many damaged packs are mapped to sets (each is one walk of the snapshots). */
const MAP_AT_MOST = 32;

/**
 * `restic check`: the structure every time (index, trees, snapshots), and the data of one subset or all.
 * A damaged repository is a verdict (ok false) with its damaged packs mapped to the sets they break; a wrong
 * password, a missing repository or a lock is thrown, never taken for damage.
 */
export async function checkRepository(restic: Restic, scope: CheckScope): Promise<RepositoryCheck> {
  // Lists the snapshots (and checks the password file) first: the sets a damaged pack breaks are named from it.
  const snapshots = await restic.snapshots();
  const read = scope === 'full' ? ['--read-data'] : [`--read-data-subset=${scope.subset}/${scope.of}`];
  const run = await runRestic(restic.env, ['check', ...read]);
  const output = `${run.stdout}${run.stderr}`;
  const group = /read group #\d+ of (\d+) data packs \(out of total (\d+) packs/.exec(output);
  const counts = group ? { packsRead: Number(group[1]), packsTotal: Number(group[2]) } : {};
  if (run.code === 0) return { ok: true, scope, ...counts, damaged: [], outputTail: '' };
  const err = resticError('check', run.code, run.signal, run.stderr);
  if (err.type !== 'ResticError') throw err;
  const damaged: DamagedPack[] = [];
  // A tree the structure check could not load is in a pack this subset may not read: named by its pack too.
  const trees = [...output.matchAll(/^error for tree ([0-9a-f]{8,64}):/gm)].map((m) => m[1]!);
  let blobs: Promise<IndexedBlob[]> | undefined;
  const index = () => (blobs ??= indexedBlobs(restic)); // read once, only if needed
  const treePacks = trees.length ? packsOfBlobs(await index(), trees) : [];
  for (const pack of new Set([...damagedPacks(output), ...treePacks])) {
    damaged.push(
      damaged.length < MAP_AT_MOST
        ? { pack, ...(await usersOfPack(restic, pack, snapshots, index)) }
        : { pack, sets: [] },
    );
  }
  return { ok: false, scope, ...counts, damaged, outputTail: tail(output) };
}

/** The sets a damaged pack breaks (see usersOfPack). */
export async function setsInPack(restic: Restic, pack: string, snapshots: readonly Snapshot[]): Promise<BrokenSet[]> {
  return (await usersOfPack(restic, pack, snapshots)).sets;
}

/**
 * The sets and SUPIM days a damaged pack breaks: those whose files have data blobs in it (`restic find --pack
 * <id> --json`, restic 0.14's own mapping, which skips trees), and those whose trees are in it: a snapshot
 * whose root tree it holds, or one with a folder tree it holds (`restic find --tree`). A pack restic cannot
 * read (its header damaged too) is named unmapped rather than failing the check's verdict; a wrong password
 * or a server gone is thrown.
 */
export async function usersOfPack(
  restic: Restic,
  pack: string,
  snapshots: readonly Snapshot[],
  index: () => Promise<IndexedBlob[]> = () => indexedBlobs(restic),
): Promise<Pick<DamagedPack, 'sets' | 'days' | 'unmapped'>> {
  if (!/^[0-9a-f]{64}$/.test(pack)) return { sets: [] };
  const run = await runRestic(restic.env, ['find', '--pack', pack, '--json']);
  if (run.code !== 0) {
    const err = resticError('find', run.code, run.signal, run.stderr);
    if (err.type !== 'ResticError') throw err;
    return { sets: [], unmapped: firstLine(run.stderr) };
  }
  const ids = new Set(findResults(run.stdout).map((r) => r.snapshot));
  const trees = (await index()).filter((b) => b.pack === pack && b.type === 'tree').map((b) => b.id);
  if (trees.length) {
    for (const s of snapshots) if (s.tree && trees.includes(s.tree)) ids.add(s.id);
    const run = await runRestic(restic.env, ['find', '--tree', ...trees, '--json']);
    if (run.code === 0) for (const r of findResults(run.stdout)) ids.add(r.snapshot);
    else if (resticError('find', run.code, run.signal, run.stderr).type !== 'ResticError')
      throw resticError('find', run.code, run.signal, run.stderr);
  }
  const sets = new Map<string, BrokenSet>();
  const days = new Set<string>();
  for (const snapshot of snapshots) {
    if (!ids.has(snapshot.id)) continue;
    const day = tag(snapshot, 'day');
    if (day) days.add(day);
    const vm = tag(snapshot, 'vm');
    const stamp = tag(snapshot, 'set');
    if (!vm || !stamp) continue;
    const disk = snapshot.tags.includes('record') ? 'manifest' : (tag(snapshot, 'disk') ?? '?');
    sets.set(`${vm}/${stamp}/${disk}`, { vm, stamp, disk, snapshot: snapshot.id });
  }
  return {
    sets: [...sets.values()].sort((a, b) =>
      `${a.vm}/${a.stamp}/${a.disk}`.localeCompare(`${b.vm}/${b.stamp}/${b.disk}`),
    ),
    ...(days.size ? { days: [...days].sort() } : {}),
  };
}

function firstLine(text: string): string {
  return text.trim().split('\n')[0]?.slice(0, 200) ?? '';
}

interface IndexedBlob {
  id: string;
  type: string;
  pack: string;
}

/** Every blob the repository's index knows, with its pack (`restic list index`, `restic cat index <id>`). */
async function indexedBlobs(restic: Restic): Promise<IndexedBlob[]> {
  const list = await runRestic(restic.env, ['list', 'index']);
  if (list.code !== 0) throw resticError('list', list.code, list.signal, list.stderr);
  const blobs: IndexedBlob[] = [];
  for (const index of list.stdout.split('\n').filter((l) => /^[0-9a-f]{64}$/.test(l))) {
    const run = await runRestic(restic.env, ['cat', 'index', index]);
    if (run.code !== 0) throw resticError('cat', run.code, run.signal, run.stderr);
    const { packs } = JSON.parse(run.stdout) as { packs?: { id: string; blobs?: { id: string; type: string }[] }[] };
    for (const pack of packs ?? [])
      for (const b of pack.blobs ?? []) blobs.push({ id: b.id, type: b.type, pack: pack.id });
  }
  return blobs;
}

/** The packs holding these blobs (full ids or the short prefixes restic prints). */
function packsOfBlobs(blobs: readonly IndexedBlob[], ids: readonly string[]): string[] {
  return [...new Set(blobs.filter((b) => ids.some((id) => b.id.startsWith(id))).map((b) => b.pack))];
}

/** The objects of `restic find --json`: one JSON array (or one per line, per snapshot). */
export function findResults(stdout: string): { snapshot: string; path?: string }[] {
  const out: { snapshot: string; path?: string }[] = [];
  const take = (value: unknown) => {
    for (const item of Array.isArray(value) ? value : [value])
      if (item && typeof item === 'object' && typeof (item as { snapshot?: unknown }).snapshot === 'string')
        out.push(item as { snapshot: string; path?: string });
  };
  try {
    take(JSON.parse(stdout || '[]'));
  } catch {
    for (const line of stdout.split('\n')) {
      try {
        if (line.trim()) take(JSON.parse(line));
      } catch {
        // a line of text between the JSON: not a result
      }
    }
  }
  return out;
}

function tag(snapshot: Snapshot, key: string): string | undefined {
  return snapshot.tags.find((t) => t.startsWith(`${key}=`))?.slice(key.length + 1);
}

function tail(output: string, lines = 20): string {
  return output.trim().split('\n').slice(-lines).join('\n');
}
