/**
 * VM names come from operators and from the hypervisor. They reach remote commands only as quoted words,
 * and become one folder name in the image area and the store, so the few names that cannot be a single
 * safe path segment are refused.
 */
export function unsafeVmNameReason(name: string): string | undefined {
  if (name.length === 0) return 'empty name';
  if (name.length > 200) return 'longer than 200 characters';
  if (name === '.' || name === '..') return 'is "." or ".."';
  if (name.includes('/')) return 'contains "/"';
  // Hidden folder names in the image area and the store are the product's own records.
  if (name.startsWith('.')) return 'starts with "."';
  if (/[\0\n\r]/.test(name)) return 'contains NUL or a line break';
  return undefined;
}
