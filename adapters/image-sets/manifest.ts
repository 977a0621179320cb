import { MANIFEST_VERSION, type ImageFormat, type ManifestImage, type SetManifest } from '../../domain/image-set';

/**
 * The one manifest format of an image set, in the hypervisor's image area and in the backup store alike:
 * `<root>/<vm>/<stamp>/manifest.json`, written last, so a set with a manifest is complete and verified.
 * Version 1 manifests (two shapes: the image area's with `path`, the store's with `file`) are still read.
 */
export const MANIFEST = 'manifest.json';
export { MANIFEST_VERSION, type ImageFormat, type ManifestImage, type SetManifest } from '../../domain/image-set';

/** What an image file may be called: `<disk>.<format>`, nothing a path could hide in. */
export const IMAGE_FILE = /^([a-z0-9]{1,32})\.(qcow2|raw)$/i;

export class ManifestError extends Error {
  override name = 'ManifestError';
}

const HOW_TO_CHECK = 'sha256sum <file> must print the sha256 above; qemu-img check <file> must pass (qcow2)';

export function newManifest(
  fields: Pick<SetManifest, 'vm' | 'stamp' | 'images'> & Partial<Pick<SetManifest, 'domainXml' | 'completedAt'>>,
): SetManifest {
  return {
    version: MANIFEST_VERSION,
    completedAt: new Date().toISOString(),
    tool: 'cluster-backup',
    howToCheck: HOW_TO_CHECK,
    ...fields,
  };
}

export function renderManifest(manifest: SetManifest): string {
  return `${JSON.stringify(manifest, null, 2)}\n`;
}

function resticOf(raw: unknown, where: string): Pick<ManifestImage, 'restic'> {
  if (raw === undefined) return {};
  const r = raw as Record<string, unknown>;
  if (typeof r?.snapshot !== 'string' || !/^[0-9a-f]{8,64}$/.test(r.snapshot) || typeof r.dataAdded !== 'number')
    throw new ManifestError(`${where}.restic is not a snapshot id and a byte count`);
  return { restic: { snapshot: r.snapshot, dataAdded: r.dataAdded } };
}

function imageFrom(raw: Record<string, unknown>, index: number): ManifestImage {
  const where = `images[${index}]`;
  const file =
    typeof raw.file === 'string'
      ? raw.file
      : String(raw.path ?? '')
          .split('/')
          .at(-1);
  const match = IMAGE_FILE.exec(file ?? '');
  if (!match) throw new ManifestError(`${where} names ${JSON.stringify(file)}, not an image file name`);
  const number = (key: string, required: boolean): number | undefined => {
    const value = raw[key];
    if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value;
    if (required || value !== undefined) throw new ManifestError(`${where}.${key} is not a size`);
    return undefined;
  };
  const sha256 = raw.sha256;
  if (typeof sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(sha256))
    throw new ManifestError(`${where}.sha256 is not a SHA-256`);
  const source = raw.source as ManifestImage['source'] | undefined;
  const version1Source = typeof raw.path === 'string' ? { path: raw.path } : undefined;
  const allocatedBytes = number('allocatedBytes', false);
  return {
    disk: typeof raw.disk === 'string' ? raw.disk : match[1]!,
    file: file!,
    format: match[2]!.toLowerCase() as ImageFormat,
    bytes: number('bytes', true)!,
    ...(allocatedBytes !== undefined ? { allocatedBytes } : {}),
    virtualSize: number('virtualSize', true)!,
    sha256,
    ...(source && typeof source === 'object' ? { source } : version1Source ? { source: version1Source } : {}),
    ...resticOf(raw.restic, where),
  };
}

/**
 * Reads a manifest of either version found in the folder of set `folder.vm`/`folder.stamp`; a damaged one is
 * a ManifestError saying what is wrong. A manifest is not signed: one that names another VM or stamp than
 * its folder (copied or moved there by hand) is refused, so a restore never takes one VM's set for another's.
 */
export function parseManifest(text: string, folder: { vm: string; stamp: string }): SetManifest {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text) as Record<string, unknown>;
  } catch (err) {
    throw new ManifestError(`not JSON: ${(err as Error).message}`);
  }
  if (!raw || typeof raw !== 'object') throw new ManifestError('not an object');
  const version = raw.version ?? 1;
  if (version !== 1 && version !== MANIFEST_VERSION) throw new ManifestError(`unknown version ${String(version)}`);
  if (!Array.isArray(raw.images) || raw.images.length === 0) throw new ManifestError('lists no images');
  const images = raw.images.map((image, i) => imageFrom((image ?? {}) as Record<string, unknown>, i));
  for (const key of ['vm', 'stamp'] as const) {
    if (raw[key] !== folder[key])
      throw new ManifestError(
        `says ${key} ${JSON.stringify(raw[key] ?? null)}, but it is in the folder of ${folder.vm}/${folder.stamp}: ` +
          'refused (moved or copied from another set?)',
      );
  }
  const completedAt = raw.completedAt ?? raw.storedAt ?? raw.verifiedAt;
  return {
    version: MANIFEST_VERSION,
    vm: folder.vm,
    stamp: folder.stamp,
    images,
    ...(typeof raw.domainXml === 'string' ? { domainXml: raw.domainXml } : {}),
    completedAt: typeof completedAt === 'string' ? completedAt : '',
    tool: typeof raw.tool === 'string' ? raw.tool : 'cluster-backup',
    howToCheck: HOW_TO_CHECK,
  };
}
