/**
 * What the product writes on a remote host (image area, restore targets) is for its owner only: every
 * remote command that creates a file or folder starts with one of these.
 */

/** Files 0600, folders 0700. */
export const PRIVATE_UMASK = 'umask 077';

/**
 * Files 0600, folders 0711: for the folders that lead to disks a restored or boot-tested guest runs from
 * (and the image area and VM folders above them). libvirt hands QEMU the files (it chowns them to its QEMU
 * user), but QEMU running as another user must still pass through every folder on the way; others may pass,
 * never list, and every file stays 0600.
 */
export const PASSABLE_UMASK = 'umask 066';
