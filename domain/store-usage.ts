/** How full a backup store's file system is, and how much of it the image sets that retention keeps take. */
export interface StoreUsage {
  /** daily (SUPIM data) or images (VM image sets); both when they share a file system. */
  stores: ('daily' | 'images')[];
  path: string;
  totalBytes: number;
  freeBytes: number;
  /** What the VM image sets in the store occupy on disk: what retention keeps. */
  imageSetBytes?: number;
  imageSets?: number;
}

export const LOW_FREE_FRACTION = 0.1;

export function freeFraction(usage: StoreUsage): number {
  return usage.totalBytes > 0 ? usage.freeBytes / usage.totalBytes : 0;
}
