import { z } from 'zod';
import { absolutePath } from './paths';

/** restic repository locations an off-site copy may use: the REST protocol (http/https) or SFTP. */
const offsiteRepository = z
  .string()
  .refine(
    (r) => /^rest:https?:\/\/[^\s/]+(\/\S*)?$/.test(r) || /^sftp:[^\s-][^\s]*$/.test(r),
    'must be a restic REST URL (rest:http://host:port/path, rest:https://...) or an SFTP location (sftp:user@host:/path)',
  )
  .refine((r) => !/[\0\n\r]/.test(r), 'must not contain NUL or line breaks')
  .refine(
    (r) => !/^rest:https?:\/\/[^/@]*:[^/@]*@/.test(r),
    'must not hold a password (user:password@): it would show in every message that names the repository',
  );

/**
 * One off-site restic repository (3-2-1): behind an append-only REST server (`rclone serve restic
 * --append-only`), so the backup host can add snapshots there and never remove or rewrite them. Its own
 * password; retention runs on the off-site host with its own credentials, never from here.
 */
export const offsiteSchema = z
  .strictObject({
    repository: offsiteRepository,
    /** The off-site repository's password, one line; refused when group or others may read it. */
    passwordFile: absolutePath,
    /**
     * HTTP basic auth of the REST server (rclone serve restic --htpasswd): the user, and a file holding its
     * password (mode 0600, like every secret here). restic 0.14 takes them only in the URL: they are put there
     * in restic's environment when it starts, never in config, argv or a message.
     */
    httpUser: z
      .string()
      .regex(/^[A-Za-z0-9._-]+$/, 'letters, digits, ., _ and - only')
      .optional(),
    httpPasswordFile: absolutePath.optional(),
    /** Upload cap for `restic copy` (bytes/s, sent as --limit-upload KiB/s); unset: transfer.maxBytesPerSecond. */
    maxBytesPerSecond: z.number().int().min(0).optional(),
    /** The watchdog alerts when this repository's newest copy is older than this. */
    maxAgeHours: z
      .number()
      .positive()
      .default(24 * 8),
    /** Each copy is followed by `restic check` reading subset n/N of the data there (rotating). */
    verifySubsets: z
      .number()
      .int()
      .min(1)
      .max(256, 'restic 0.14 splits the packs into at most 256 subsets')
      .default(12),
    /** A REST server that accepts no connection for this long during a copy makes the copy "behind" (stopped). */
    unreachableSeconds: z.number().int().min(1).max(3600).default(120),
    /**
     * Reading this repository's snapshots (`status`, the watchdog, the metrics) gives up after this long: a
     * server that takes connections and never answers is reported unreadable, not waited on.
     */
    answerSeconds: z.number().int().min(1).max(3600).default(60),
  })
  .refine((o) => (o.httpUser === undefined) === (o.httpPasswordFile === undefined), {
    message: 'give httpUser and httpPasswordFile together, or neither',
    path: ['httpPasswordFile'],
  })
  .refine((o) => !o.httpUser || o.repository.startsWith('rest:'), {
    message: 'HTTP auth is for REST repositories only',
    path: ['httpUser'],
  });
