/** The contracts of a VM restore between its workflow and its activities: the plan, a push's progress, a boot test's outcome. */
/** Where one image of a restore goes on the hypervisor, and what it replaces (mode replace). */
export interface RestoreTarget {
  disk: string;
  format: string;
  /** Where the pushed image is renamed once its hash is verified. */
  pushPath: string;
  /**
   * The pushed bytes' format when it is not `format` (a restic set's raw image for a VM's qcow2 disk, mode
   * replace): they arrive verified at `<pushPath>.<arrivesAs>` and are converted into `pushPath` there.
   */
  arrivesAs?: string;
  /** mode replace: the VM's disk file the image takes the place of, and the name the old file keeps. */
  finalPath?: string;
  keepAs?: string;
}

export interface RestorePlan {
  /** The domain the restored images end up in. */
  domain: string;
  /** The folder on the hypervisor that holds this restore's files (mode as): removed if the restore fails. */
  dir?: string;
  wasRunning: boolean;
  shutdownTimeoutSeconds: number;
  targets: RestoreTarget[];
}

/** A boot test's outcome as the workflow keeps it (never the raw console: it may hold anything). */
export interface BootTestOutcome {
  passed: boolean;
  detail: string;
  bootSeconds: number;
  /** A failed test: the guest's last console lines, cleaned (see consoleLines). */
  console?: string[];
}

/** What a push reports in its heartbeats: the next attempt continues from `offset`. */
export interface PushProgress {
  image: string;
  offset: number;
  size: number;
}

/** Where a target's pushed bytes arrive (and are hash-checked): `pushPath`, or its converted-from file. */
export function arrivalPath(target: RestoreTarget): string {
  return target.arrivesAs ? `${target.pushPath}.${target.arrivesAs}` : target.pushPath;
}
