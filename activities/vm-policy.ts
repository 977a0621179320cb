import type { HypervisorConfig } from '../config/schema';
import type { VmPolicy } from '../domain/weekly-summary';

/** Everything decided per VM: the hypervisor section's defaults with the VM's `perVm` exception over them. */
export interface VmSettings extends Required<VmPolicy> {
  overlayReserveBytes: number;
  /** Not per VM: the hypervisor section's. */
  overlayMergeTimeoutSeconds: number;
  overlayMergeBandwidthMiBps?: number;
}

/** The one place a VM's policy is resolved. */
export function resolveVmPolicy(hv: HypervisorConfig, vm: string): VmSettings {
  const own = hv.perVm[vm] ?? {};
  return {
    shutdownTimeoutSeconds: own.shutdownTimeoutSeconds ?? hv.shutdownTimeoutSeconds,
    forceOff: own.forceOff ?? hv.forceOff,
    maxDowntimeSeconds: own.maxDowntimeSeconds ?? hv.maxDowntimeSeconds,
    imaging: own.imaging ?? hv.imaging,
    streamWhileDown: own.streamWhileDown ?? hv.streamWhileDown,
    overlayReserveBytes: own.overlayReserveBytes ?? hv.overlayReserveBytes,
    overlayMergeTimeoutSeconds: hv.overlayMergeTimeoutSeconds,
    ...(hv.overlayMergeBandwidthMiBps !== undefined
      ? { overlayMergeBandwidthMiBps: hv.overlayMergeBandwidthMiBps }
      : {}),
  };
}

/** The part of a VM's settings the weekly workflow gets (WeeklySettings.policy). */
export function weeklyPolicy(settings: VmSettings): VmPolicy {
  const { shutdownTimeoutSeconds, forceOff, maxDowntimeSeconds, imaging, streamWhileDown } = settings;
  // Only when set: the policies of runs from before the option stay as they were.
  return { shutdownTimeoutSeconds, forceOff, maxDowntimeSeconds, imaging, ...(streamWhileDown ? { streamWhileDown } : {}) };
}
