import type { Config } from '../config/schema';
import { LocalImageSets } from '../adapters/image-sets/local-image-sets';
import { ResticImageSets } from '../adapters/image-sets/restic-image-sets';
import { Restic } from '../adapters/restic/restic';
import { resticEnvOf } from '../adapters/restic/restic-config';
import type { ResticEnv } from '../adapters/restic/restic-process';
import { storeFileMode } from '../adapters/local/file-mode';
import { Mailer } from '../adapters/mail/mailer';
import type { SshSession } from '../adapters/ssh/ssh-session';
import { requireSection } from './config-section';
import { refuse } from './failures';
import { HypervisorSessions } from './hypervisor-session';
import { resolveVmPolicy, type VmSettings } from './vm-policy';

/** The adapters the activities share, built once from config (by the worker, or a test). */
export interface Services {
  /** Opens the SSH session to a configured host; the caller closes it. */
  openSsh: (hostKey: string) => Promise<SshSession>;
  /** Reports and alerts: SMTP, or .eml files in the outbox with the store's permissions. */
  mailer: Mailer;
  /** The image sets in the backup store (NotConfigured without a store section). */
  storeSets: () => LocalImageSets;
  /** store.engine restic: the sets in the repository (NotConfigured otherwise). */
  resticSets: () => ResticImageSets;
  hypervisors: HypervisorSessions;
  /** One VM's settings on the hypervisor `host` (a key of `hosts`). */
  vmPolicy: (host: string, vm: string) => VmSettings;
}

export function createServices({
  config,
  openSsh,
  hypervisor,
}: {
  config: Config;
  openSsh: (hostKey: string) => Promise<SshSession>;
  /** The hypervisor these services drive (default: the first of config.hypervisors). */
  hypervisor?: string;
}): Services {
  const hypervisors = new HypervisorSessions(config, openSsh, hypervisor);
  const mode = storeFileMode(config.permissions);
  let sets: LocalImageSets | undefined;
  let restic: ResticImageSets | undefined;
  return {
    openSsh,
    mailer: new Mailer(config.mail, mode),
    storeSets: () => (sets ??= new LocalImageSets(requireSection(config.store, 'store').root, mode)),
    resticSets: () => (restic ??= new ResticImageSets(new Restic(resticOptions(config)))),
    hypervisors,
    vmPolicy: (host, vm) => {
      const hv = hypervisors.hv;
      if (hv.host !== host) throw refuse(`no hypervisor ${JSON.stringify(host)} in config`, 'NotConfigured');
      return resolveVmPolicy(hv, vm);
    },
  };
}

/** The repository of store.engine restic: its path (default <root>/restic), password file and cache. */
export function resticOptions(config: Config): ResticEnv {
  const env = resticEnvOf(requireSection(config.store, 'store'));
  if (!env) throw refuse('store.engine is not restic: there is no restic repository in config', 'NotConfigured');
  return env;
}
