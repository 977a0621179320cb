import { z } from 'zod';
import { checkPathTemplate } from '../domain/path-template';
import { isValidTimeZone } from '../domain/julian-day';
import { hypervisorSchema, namedHypervisorSchema, streamWhileDownFields } from './hypervisor-schema';
import { offsiteSchema } from './offsite-schema';
import { absolutePath } from './paths';

const hostSchema = z.strictObject({
  host: z
    .string()
    .min(1)
    .refine((h) => !/[\s/@]/.test(h) && !h.startsWith('-'), 'is not a host name or address'),
  port: z.number().int().min(1).max(65535).default(22),
  user: z.string().regex(/^[a-z_][a-z0-9_.-]*$/i, 'is not a valid user name'),
  privateKeyFile: absolutePath,
  knownHostsFile: absolutePath,
  /** Seconds between SSH keepalives; with keepaliveCountMax a dead link fails within their product. */
  keepaliveSeconds: z.number().positive().default(5),
  keepaliveCountMax: z.number().int().min(1).default(3),
  connectTimeoutSeconds: z.number().positive().default(20),
  /**
   * Folders `restore day` and `restore file --host` may write to on this host (`--to` at or below one of
   * them). Default: the supim host gets the fixed part of supim.sourceTemplate, every other host none.
   */
  restoreRoots: z
    .array(absolutePath.refine((p) => !p.split('/').includes('..'), 'must not contain .. segments'))
    .optional(),
});

const supimSchema = z.strictObject({
  /** Key into `hosts`. */
  host: z.string().min(1),
  sourceTemplate: z.string().superRefine((template, ctx) => {
    for (const problem of checkPathTemplate(template)) ctx.addIssue({ code: 'custom', message: problem });
  }),
  destinationRoot: absolutePath,
  daysBack: z.number().int().min(0).max(366).default(2),
  timeZone: z
    .string()
    .default('America/Sao_Paulo')
    .refine(isValidTimeZone, 'is not an IANA time zone (e.g. America/Sao_Paulo)'),
  /** A day folder with any file modified this recently is still being written: "not yet". */
  settleSeconds: z.number().int().min(0).default(300),
  /** If set, a day is complete only once this file exists in its folder (e.g. a marker the model writes last). */
  completionMarker: z
    .string()
    .regex(/^[^/\0\n]+$/, 'must be a plain file name')
    .refine((n) => n !== '.' && n !== '..', 'must be a plain file name')
    .optional(),
  /** size: compare sizes after copy; sha256: also compare checksums computed on both ends. */
  verify: z.enum(['size', 'sha256']).default('size'),
  /**
   * When a day's data should be there, in timeZone: "HH:MM" on the day itself, or "+N HH:MM" N days later.
   * A day still not there by then is reported late (the run is not OK). Unset: only a day leaving the
   * window unbacked-up (missing) fails the run.
   */
  expectedBy: z
    .string()
    .regex(/^(\+\d{1,3} )?([01]\d|2[0-3]):[0-5]\d$/, 'is not "HH:MM" or "+N HH:MM" (N days after the julian day)')
    .optional(),
});

const octalMode = (example: string) =>
  z
    .string({ error: `must be a quoted octal mode, e.g. '${example}'` })
    .regex(/^0?[0-7]{3}$/, `must be an octal mode such as '${example}'`);

/** Who may read what the worker writes into the backup store and the outbox. */
const permissionsSchema = z.strictObject({
  /** Backed-up files, image sets, manifests, reports (.eml). Default: the worker's user only. */
  fileMode: octalMode('0640').default('0600'),
  folderMode: octalMode('0750').default('0700'),
  /** Group (name or gid) given to every file and folder written, for sites that share the store with a group. */
  group: z
    .string()
    .regex(/^[a-z_][a-z0-9_.-]*\$?$|^\d+$/i, 'is not a group name or id')
    .optional(),
});

const storeSchema = z
  .strictObject({
    /** The backup store on the worker's machine: <root>/<vm>/<stamp>/<disk>.<format> + manifest.json. */
    root: absolutePath,
    /** Free space required beyond this week's expected images. */
    spaceMarginBytes: z
      .number()
      .int()
      .min(0)
      .default(1024 ** 3),
    /**
     * How images travel. stream: one remote `cat` over an SSH exec channel, as scp and rsync do (the fastest:
     * no requests, no reassembly). sftp: pipelined SFTP reads (transfer.parallelReads x chunkBytes).
     */
    transport: z.enum(['stream', 'sftp']).default('stream'),
    /**
     * zstd on the wire (compressed on the hypervisor, decompressed here; the stored image is bit-identical):
     * worth it for mostly-empty disks and slow links. auto: per image, when the hypervisor has zstd and a sample
     * of 16 MiB spread over the image compresses to half or less (random data goes without). Needs transport: stream.
     */
    compression: z.enum(['none', 'zstd', 'auto']).default('none'),
    /**
     * How sets are kept. files: plain image files + manifest.json under root (one full copy per set).
     * restic: a restic repository (deduplicated, compressed, encrypted); each frozen disk streams into it
     * as raw bytes, read once on the hypervisor.
     */
    engine: z.enum(['files', 'restic']).default('files'),
    restic: z
      .strictObject({
        /** The repository: a local path (default <root>/restic). */
        repository: absolutePath.optional(),
        /** The repository password, one line; refused when group or others may read it. A lost key is a lost backup. */
        passwordFile: absolutePath,
        /** restic's cache folder (default: none, restic runs with --no-cache). */
        cacheDir: absolutePath.optional(),
        /**
         * `store verify` reads 1/N of the data per run (restic check --read-data-subset n/N, rotating): 12 with
         * the monthly timer in deploy/ reads all data within a year.
         */
        verifySubsets: z
          .number()
          .int()
          .min(1)
          .max(256, 'restic 0.14 splits the packs into at most 256 subsets (n/N with N <= 256)')
          .default(12),
      })
      .optional(),
    retention: z
      .strictObject({
        keepLast: z.number().int().min(1).default(4),
        keepWeekly: z.number().int().min(0).default(8),
        keepMonthly: z.number().int().min(0).default(12),
        /**
         * List what retention would delete in the store (run summary, report) and delete nothing: to try a
         * policy. Room is then not made either, so a VM whose images would not fit is skipped before it stops.
         */
        dryRun: z.boolean().default(false),
      })
      .prefault({}),
  })
  .refine((s) => s.transport === 'stream' || s.compression === 'none', {
    message: 'compression travels as a stream: set transport: stream, or compression: none',
    path: ['compression'],
  })
  .refine((s) => s.engine !== 'restic' || s.restic !== undefined, {
    message: 'engine: restic needs a restic section (at least restic.passwordFile)',
    path: ['restic'],
  });

const email = z.string().regex(/^[^\s@<>]+@[^\s@<>]+$/, 'is not an email address');
/** A loopback host, where plaintext never leaves the machine (SMTP without TLS, Temporal without TLS). */
export const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|::1)$/;

const mailSchema = z
  .strictObject({
    from: email.default('cluster-backup@localhost'),
    /** Who gets each job's report. */
    recipients: z.strictObject({ daily: z.array(email).default([]), weekly: z.array(email).default([]) }).prefault({}),
    /** Without smtp, every report is written as an .eml file into the outbox instead. */
    smtp: z
      .strictObject({
        host: z.string().min(1),
        port: z.number().int().min(1).max(65535).default(587),
        /** starttls: required upgrade (port 587); implicit-tls: TLS from the start (port 465); none: loopback only. */
        security: z.enum(['starttls', 'implicit-tls', 'none']).default('starttls'),
        user: z.string().min(1).optional(),
        /** The password is read from this file by the worker; it never enters Temporal. */
        passwordFile: absolutePath.optional(),
        /** Extra CA certificate (PEM) to trust, e.g. for an internal mail relay. */
        caFile: absolutePath.optional(),
      })
      .refine((s) => s.security !== 'none' || LOOPBACK.test(s.host), {
        message: 'security "none" (plain text) is only allowed to a loopback host',
        path: ['security'],
      })
      .refine((s) => !s.user === !s.passwordFile, {
        message: 'user and passwordFile go together',
        path: ['passwordFile'],
      })
      .optional(),
    outbox: absolutePath.optional(),
    /** Temporal Web UI address, for the link to the run in each report. */
    webUiBaseUrl: z.url().optional(),
  })
  .refine((m) => m.smtp || m.outbox, { message: 'needs smtp or an outbox folder' });

const timeOfDay = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'is not a time HH:MM');
const DAYS = ['MONDAY', 'TUESDAY', 'WEDNESDAY', 'THURSDAY', 'FRIDAY', 'SATURDAY', 'SUNDAY'] as const;

const schedulesSchema = z.strictObject({
  timeZone: z.string().default('America/Sao_Paulo').refine(isValidTimeZone, 'is not an IANA time zone'),
  daily: z.strictObject({ at: timeOfDay.default('03:00'), paused: z.boolean().default(false) }).prefault({}),
  weekly: z
    .strictObject({
      dayOfWeek: z.enum(DAYS).default('SUNDAY'),
      at: timeOfDay.default('02:00'),
      paused: z.boolean().default(false),
    })
    .prefault({}),
  /** The dead-man's switch: how often to check, and how old the last successful run of each job may be. */
  watchdog: z
    .strictObject({
      everyMinutes: z.number().int().min(1).default(60),
      maxAgeHours: z
        .strictObject({
          daily: z.number().positive().default(26),
          weekly: z
            .number()
            .positive()
            .default(24 * 8),
        })
        .prefault({}),
      /**
       * Daily runs in a row (one per date) that found no data at all (every day's folder missing or empty)
       * before the watchdog alerts: a wrong sourceTemplate or a stopped model otherwise reads as OK. 0: never.
       */
      maxDailyRunsWithoutData: z.number().int().min(0).default(3),
    })
    .prefault({}),
  /** The guardian puts back VMs a weekly run left down (terminated, over budget): how often it looks. */
  guardian: z.strictObject({ everyMinutes: z.number().int().min(1).max(60).default(5) }).prefault({}),
  /** After the server or worker was down, a missed run still starts if it is at most this late (once, not a burst). */
  catchupWindowHours: z
    .number()
    .positive()
    .max(24 * 7)
    .default(12),
});

/** The weekly boot test of one VM's newest stored set (the one tested longest ago). */
const restoreTestSchema = z.strictObject({
  /** A serial-console line matching this regular expression shows the guest is alive (e.g. a login prompt). */
  pattern: z
    .string()
    .min(1)
    .default('login:')
    .refine((p) => {
      try {
        new RegExp(p);
        return true;
      } catch {
        return false;
      }
    }, 'is not a regular expression'),
  /** How long the guest may take from start to that line. */
  timeoutSeconds: z.number().int().min(5).max(3600).default(300),
  /** Memory of the throw-away domain (the saved definition's is capped to this). */
  memoryMiB: z.number().int().min(32).default(1024),
  /** When it runs: its own schedule (after the weekly run by default). */
  schedule: z
    .strictObject({
      dayOfWeek: z.enum(DAYS).default('SUNDAY'),
      at: timeOfDay.default('08:00'),
      paused: z.boolean().default(false),
    })
    .prefault({}),
});

const temporalSchema = z.strictObject({
  /**
   * Set here, it wins over $TEMPORAL_ADDRESS and the Temporal profile; left out, they decide (default
   * 127.0.0.1:7233). See adapters/temporal/temporal-connection.ts.
   */
  address: z.string().min(1).optional(),
  /** Like address: set here it wins over $TEMPORAL_NAMESPACE and the profile (default: default). */
  namespace: z.string().min(1).optional(),
  /** Workflows and every activity that only talks to remote hosts: any worker, on any machine, may take them. */
  taskQueue: z.string().min(1).default('cluster-backup'),
  /**
   * Activities that read or write the backup store's disk (day copies, image pulls, store retention): only
   * workers on the backup host poll it (worker.storeHost). Default: <taskQueue>-store.
   */
  storeTaskQueue: z.string().min(1).optional(),
  /**
   * mTLS or server-verified TLS to a Temporal cluster (files read by the worker and the CLI, never sent);
   * replaces the Temporal profile's and TEMPORAL_TLS_*'s TLS settings as a whole.
   */
  tls: z
    .strictObject({
      caFile: absolutePath.optional(),
      certFile: absolutePath.optional(),
      keyFile: absolutePath.optional(),
      serverName: z.string().optional(),
    })
    .refine((t) => !t.certFile === !t.keyFile, { message: 'certFile and keyFile go together', path: ['keyFile'] })
    .optional(),
  /** API key (e.g. Temporal Cloud) read from this file; wins over $TEMPORAL_API_KEY and the profile's. */
  apiKeyFile: absolutePath.optional(),
  /**
   * Plaintext gRPC (no TLS) is only used to a loopback address unless this is true: for a Temporal server on
   * a network you trust (workflow inputs and results, and any API key, travel unencrypted).
   */
  allowPlaintext: z.boolean().optional(),
});

const transferSchema = z.strictObject({
  /** SFTP reads kept in flight per file (daily copies; images with store.transport: sftp): memory is this x chunk. */
  parallelReads: z.number().int().min(1).max(256).default(48),
  /** Bytes per SFTP read; OpenSSH's sftp-server answers at most 261120 (255 KiB). */
  chunkBytes: z.number().int().min(4096).max(261120).default(261120),
  /** Small files copied at once: they are latency-bound, not bandwidth-bound (large ones go two at a time). */
  parallelFiles: z.number().int().min(1).max(128).default(32),
  /**
   * The SSH client that carries bulk streams (images pulled with store.transport: stream, zstd or not).
   * openssh: OpenSSH's `ssh` (must be installed on the worker's machine), one connection per stream, with
   * the host's key file and known_hosts (strict check, no agent, no forwarding, no user ssh config); it
   * decrypts in its own process. ssh2: over the activity's ssh2 connection, on the event loop (slower).
   * Commands, listings and SFTP always use ssh2. ssh2 stays the default: on a 2-core machine shared by sshd,
   * the client and the hash, openssh did not win consistently (README, Benchmark), though its tests pass.
   */
  bulkClient: z.enum(['openssh', 'ssh2']).default('ssh2'),
  /** Bandwidth cap per file in bytes/s (like rsync --bwlimit); 0 means none. */
  maxBytesPerSecond: z.number().int().min(0).default(0),
  /** A copy silent for this long is taken as dead and retried elsewhere (resuming): how fast a crash is noticed. */
  heartbeatTimeoutSeconds: z.number().int().min(2).max(600).default(30),
  /**
   * A day's copy that receives nothing from the compute host (listing, files, checksums) for this long is
   * taken as hung there and stopped, and the attempt retried. Raise it when verify: sha256 and one file takes
   * the compute host longer than this to hash.
   */
  stallSeconds: z.number().int().min(1).max(86400).default(300),
});

export const configSchema = z
  .strictObject({
    temporal: temporalSchema.prefault({}),
    hosts: z.record(z.string().regex(/^[a-z0-9][a-z0-9_-]*$/i, 'host keys are letters, digits, - and _'), hostSchema),
    supim: supimSchema.optional(),
    /** One hypervisor (earlier configs): the same as a `hypervisors` list of one named after its host. */
    hypervisor: hypervisorSchema.optional(),
    /** The hypervisors, each backed up by its own child workflow; a VM name is listed on one hypervisor only. */
    hypervisors: z.array(namedHypervisorSchema).optional(),
    /** Where verified VM images are pulled to; without it, images stay on the hypervisor only. */
    store: storeSchema.optional(),
    worker: z
      .strictObject({
        /**
         * This machine holds the backup store (supim.destinationRoot, store.root): the worker also polls the
         * store task queue. Set false on workers elsewhere; they run workflows and remote-only activities.
         */
        storeHost: z.boolean().default(true),
        /** host:port where the worker serves Prometheus metrics (Temporal SDK runtime telemetry); unset: none. */
        metricsBindAddress: z
          .string()
          .regex(/^[^\s:]+:\d{1,5}$/, 'is not host:port')
          .optional(),
      })
      .prefault({}),
    /** Temporal Schedules that fire the jobs: `cluster-backup schedules apply` creates or updates them. */
    schedules: schedulesSchema.prefault({}),
    /** Reports; the default writes them to ./outbox next to the config file. */
    mail: mailSchema,
    transfer: transferSchema.prefault({}),
    permissions: permissionsSchema.prefault({}),
    restoreTest: restoreTestSchema.prefault({}),
    /** Off-site restic repositories the store's new snapshots are copied to (store.engine restic), by name. */
    offsite: z
      .record(z.string().regex(/^[a-z0-9][a-z0-9_-]*$/i, 'off-site names are letters, digits, - and _'), offsiteSchema)
      .default({}),
  })
  .superRefine((config, ctx) => {
    if (Object.keys(config.offsite).length && config.store?.engine !== 'restic') {
      ctx.addIssue({
        code: 'custom',
        path: ['offsite'],
        message: 'off-site copies are restic copies: they need store.engine: restic (with store.restic)',
      });
    }
    if (config.store?.engine !== 'restic') {
      for (const path of streamWhileDownFields(config.hypervisor, config.hypervisors)) {
        ctx.addIssue({
          code: 'custom',
          path,
          message: 'streams the disks into a restic repository: it needs store.engine: restic',
        });
      }
    }
    const hostRefs: [string | undefined, (string | number)[]][] = [
      [config.supim?.host, ['supim', 'host']],
      [config.hypervisor?.host, ['hypervisor', 'host']],
      ...(config.hypervisors ?? []).map((hv, i): [string, (string | number)[]] => [
        hv.host,
        ['hypervisors', i, 'host'],
      ]),
    ];
    for (const [host, path] of hostRefs) {
      if (host !== undefined && !(host in config.hosts)) {
        ctx.addIssue({
          code: 'custom',
          path,
          message: `names no entry of hosts (have: ${Object.keys(config.hosts).join(', ') || 'none'})`,
        });
      }
    }
    if (config.hypervisor && config.hypervisors) {
      ctx.addIssue({
        code: 'custom',
        path: ['hypervisor'],
        message: 'give either hypervisor (one) or hypervisors (a list), not both',
      });
    }
    const seen = new Set<string>();
    (config.hypervisors ?? []).forEach((hv, i) => {
      if (seen.has(hv.name)) {
        ctx.addIssue({ code: 'custom', path: ['hypervisors', i, 'name'], message: `${hv.name} is named twice` });
      }
      seen.add(hv.name);
    });
    // The store keeps a VM's sets by its name: one name on two hypervisors would mix their sets.
    const listedOn = new Map<string, string>();
    (config.hypervisors ?? []).forEach((hv, i) => {
      if (hv.vms === 'all-running') return;
      hv.vms.forEach((vm, j) => {
        const other = listedOn.get(vm);
        if (other !== undefined && other !== hv.name) {
          ctx.addIssue({
            code: 'custom',
            path: ['hypervisors', i, 'vms', j],
            message: `${vm} is also listed on hypervisor ${other}: VM names must differ across hypervisors (the store keeps sets by VM name)`,
          });
        }
        listedOn.set(vm, hv.name);
      });
    });
    if (!config.supim && !config.hypervisor && !config.hypervisors?.length) {
      ctx.addIssue({ code: 'custom', path: [], message: 'nothing to back up: add a supim or a hypervisor section' });
    }
  })
  // Every reader sees the list: the single section is a list of one named after its host.
  .transform(({ hypervisor, hypervisors, ...config }) => ({
    ...config,
    hypervisors: hypervisors ?? (hypervisor ? [{ name: hypervisor.host, ...hypervisor }] : []),
  }));

export type Config = z.output<typeof configSchema>;
export type HostConfig = z.output<typeof hostSchema>;
export type SchedulesConfig = z.output<typeof schedulesSchema>;
export type MailConfig = z.output<typeof mailSchema>;
export type StoreConfig = z.output<typeof storeSchema>;
export type HypervisorConfig = z.output<typeof namedHypervisorSchema>;
export type SupimConfig = z.output<typeof supimSchema>;
export type TransferConfig = z.output<typeof transferSchema>;
export type PermissionsConfig = z.output<typeof permissionsSchema>;
export type RestoreTestConfig = z.output<typeof restoreTestSchema>;
export type OffsiteConfig = z.output<typeof offsiteSchema>;
