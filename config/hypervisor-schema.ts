import { z } from 'zod';
import { unsafeVmNameReason } from '../domain/vm-names';
import { absolutePath } from './paths';

/** The hypervisor section: one hypervisor (the single `hypervisor:` of earlier configs) or each of `hypervisors:`. */
const vmName = z.string().superRefine((name, ctx) => {
  const reason = unsafeVmNameReason(name);
  if (reason) ctx.addIssue({ code: 'custom', message: `VM name ${reason}` });
});

const vmPolicy = {
  /** How long a guest may take to power off after the ACPI request. */
  shutdownTimeoutSeconds: z.number().int().min(1).max(3600),
  /** On shutdown timeout, pull the plug (risks the guest's open files) instead of skipping the VM. */
  forceOff: z.boolean(),
  /**
   * How long the VM may stay down for its backup, from the stop request: imaging still under way then is
   * abandoned and the VM started again (the report says why).
   */
  maxDowntimeSeconds: z
    .number()
    .int()
    .min(30)
    .max(7 * 24 * 3600),
  /**
   * offline: the VM stays down while its disks are copied and verified. overlay: qcow2 overlays go on while it
   * is off, it starts at once, the frozen disks are copied while it runs and the overlays merged back live.
   */
  imaging: z.enum(['offline', 'overlay']),
  /**
   * offline with store.engine restic: each disk streamed from the shut-off VM straight into the repository
   * (no image-area copy, no space needed there); the VM stays down for the stream, not for a local copy.
   */
  streamWhileDown: z.boolean(),
  /** Free space kept for the overlays' growth (the guest's writes during the copy) on each disk's filesystem. */
  overlayReserveBytes: z.number().int().min(0),
};

const hypervisorFields = {
  /** Key into `hosts`. */
  host: z.string().min(1),
  driver: z.literal('libvirt').default('libvirt'),
  /** libvirt connection URI as seen on the hypervisor. */
  uri: z.string().min(1).default('qemu:///system'),
  /** Where images are written on the hypervisor first (fast local copy, short downtime). */
  imageArea: absolutePath,
  /** Which VMs: every running one at the start of the run, or a list (a VM that is off stays off). */
  vms: z.union([z.literal('all-running'), z.array(vmName).min(1)]).default('all-running'),
  shutdownTimeoutSeconds: vmPolicy.shutdownTimeoutSeconds.default(180),
  forceOff: vmPolicy.forceOff.default(false),
  maxDowntimeSeconds: vmPolicy.maxDowntimeSeconds.default(3600),
  /** A copy or check on the hypervisor that reads nothing for this long is taken as hung and stopped. */
  stallSeconds: z.number().int().min(5).max(3600).default(120),
  imaging: vmPolicy.imaging.default('overlay'),
  streamWhileDown: vmPolicy.streamWhileDown.default(false),
  overlayReserveBytes: vmPolicy.overlayReserveBytes.default(1024 ** 3),
  /** A live merge of one disk's overlay taking longer is aborted (the VM runs on, on its overlay) and retried. */
  overlayMergeTimeoutSeconds: z.number().int().min(10).default(3600),
  /** Caps the live merge's I/O (MiB/s) so it does not starve the guests' own; unset: as fast as the storage goes. */
  overlayMergeBandwidthMiBps: z.number().int().min(1).optional(),
  /** Per-VM exceptions to the settings above (all but stallSeconds and the overlay merge's timeout and bandwidth). */
  perVm: z.record(vmName, z.strictObject(vmPolicy).partial()).default({}),
  /** VMs taken down at the same time. */
  concurrency: z.number().int().min(1).max(16).default(1),
  /** Free space required in the image area beyond the VM's allocated disk size. */
  spaceMarginBytes: z
    .number()
    .int()
    .min(0)
    .default(1024 ** 3),
  /** Verified image sets kept per VM on the hypervisor (older ones go once a newer one is verified). */
  keepImages: z.number().int().min(1).default(2),
  /**
   * libvirtd not answering or SSH unreachable for up to this long, at any step, is waited out (with backoff)
   * and the step goes on; past it the step fails and the VM is left running.
   */
  hypervisorOutageSeconds: z.number().int().min(0).max(86400).default(600),
};

/** Names a hypervisor in workflow IDs, task queues, reports and metrics. */
const hypervisorName = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/i, 'hypervisor names are letters, digits, - and _');

/** The single `hypervisor:` section of earlier configs: a list of one, named after its host. */
export const hypervisorSchema = z.strictObject(hypervisorFields);
export const namedHypervisorSchema = z.strictObject({ name: hypervisorName, ...hypervisorFields });

type StreamingSection = { streamWhileDown: boolean; perVm: Record<string, { streamWhileDown?: boolean }> };

/** The config paths that turn streamWhileDown on (it needs store.engine restic). */
export function streamWhileDownFields(
  single: StreamingSection | undefined,
  list: StreamingSection[] | undefined,
): (string | number)[][] {
  const sections: [StreamingSection, (string | number)[]][] = [
    ...(single ? [[single, ['hypervisor']] as [StreamingSection, string[]]] : []),
    ...(list ?? []).map((hv, i): [StreamingSection, (string | number)[]] => [hv, ['hypervisors', i]]),
  ];
  return sections.flatMap(([hv, at]) => [
    ...(hv.streamWhileDown ? [[...at, 'streamWhileDown']] : []),
    ...Object.entries(hv.perVm)
      .filter(([, own]) => own.streamWhileDown)
      .map(([vm]) => [...at, 'perVm', vm, 'streamWhileDown']),
  ]);
}
