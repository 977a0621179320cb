/**
 * An image set as its manifest records it (the format adapters/image-sets/manifest.ts reads and writes): the
 * images of one VM at one stamp, each with its disk, file, format, sizes and SHA-256.
 */
export const MANIFEST_VERSION = 2;

export type ImageFormat = 'qcow2' | 'raw';

export interface ManifestImage {
  /** Device name inside the VM (vda): the disk map's key. */
  disk: string;
  /** `<disk>.<format>`, relative to the set's folder. */
  file: string;
  format: ImageFormat;
  /** Apparent size. */
  bytes: number;
  /** Bytes the file occupies on disk (st_blocks x 512); sparse images take less than `bytes`. */
  allocatedBytes?: number;
  virtualSize: number;
  sha256: string;
  /** Where the image came from: the VM's disk on the hypervisor (and, in the store, the hypervisor's hash). */
  source?: { path?: string; sha256?: string; type?: 'file' | 'block' };
  /** store.engine restic: the snapshot holding the image, and the bytes it added to the repository. */
  restic?: { snapshot: string; dataAdded: number };
}

export interface SetManifest {
  version: typeof MANIFEST_VERSION;
  vm: string;
  stamp: string;
  images: ManifestImage[];
  /** `virsh dumpxml --inactive` of the VM when it was imaged, secrets stripped: what a restore defines. */
  domainXml?: string;
  completedAt: string;
  tool: string;
  howToCheck: string;
}
