import { accessSync, constants, existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/**
 * The environment libguestfs needs to boot its appliance on this machine, derived, never hard-coded:
 *
 * - `LIBGUESTFS_BACKEND=direct`: libguestfs runs QEMU itself (no libvirtd is asked for anything).
 * - `LIBGUESTFS_BACKEND_SETTINGS=force_tcg` when /dev/kvm cannot run a guest (a machine without vmx/svm has the
 *   device but QEMU hangs in it: "accel=kvm:tcg" picks KVM): decided by `kvmUsable`.
 * - supermin builds the appliance from the host's kernel in /boot. A machine without a readable one (a
 *   container) can have a kernel unpacked for the appliance by scripts/bootstrap.sh into `<checkout>/.data/
 *   guestfs-kernel/` (`boot/vmlinuz-<v>` and `lib/modules/<v>` with its modules.dep): SUPERMIN_KERNEL,
 *   SUPERMIN_KERNEL_VERSION and SUPERMIN_MODULES then point there. Variables already set are left alone.
 */
export function applianceEnv(
  base: NodeJS.ProcessEnv = process.env,
  options: { kernelDir?: string; kvmUsable?: boolean } = {},
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...base, LIBGUESTFS_BACKEND: base.LIBGUESTFS_BACKEND ?? 'direct' };
  if (!(options.kvmUsable ?? kvmUsable()) && env.LIBGUESTFS_BACKEND_SETTINGS === undefined)
    env.LIBGUESTFS_BACKEND_SETTINGS = 'force_tcg';
  if (env.SUPERMIN_KERNEL === undefined && !readableBootKernel()) {
    const kernel = unpackedKernel(options.kernelDir ?? defaultKernelDir());
    if (kernel) {
      env.SUPERMIN_KERNEL = kernel.vmlinuz;
      env.SUPERMIN_KERNEL_VERSION = kernel.version;
      env.SUPERMIN_MODULES = kernel.modules;
    }
  }
  return env;
}

/** `<checkout>/.data/guestfs-kernel` (this file is compiled to dist/adapters/guestfs/). */
export function defaultKernelDir(): string {
  return resolve(__dirname, '..', '..', '..', '.data', 'guestfs-kernel');
}

function readableBootKernel(): boolean {
  try {
    return readdirSync('/boot').some((name) => {
      if (!name.startsWith('vmlinuz-')) return false;
      try {
        accessSync(join('/boot', name), constants.R_OK);
        return true;
      } catch {
        return false;
      }
    });
  } catch {
    return false;
  }
}

/** The newest kernel unpacked into `dir` that has its modules and a modules.dep; undefined if none. */
export function unpackedKernel(dir: string): { vmlinuz: string; version: string; modules: string } | undefined {
  const boot = join(dir, 'boot');
  const versions = existsSync(boot)
    ? readdirSync(boot)
        .filter((n) => n.startsWith('vmlinuz-'))
        .map((n) => n.slice('vmlinuz-'.length))
        .sort()
    : [];
  for (const version of versions.reverse()) {
    const modules = join(dir, 'lib', 'modules', version);
    if (existsSync(join(modules, 'modules.dep')))
      return { vmlinuz: join(boot, `vmlinuz-${version}`), version, modules };
  }
  return undefined;
}

/** Whether the CPU offers hardware virtualisation (vmx/svm) and /dev/kvm is there to use it. */
export function kvmUsable(): boolean {
  if (!existsSync('/dev/kvm')) return false;
  try {
    const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
    return /^flags\s*:.*\b(vmx|svm)\b/m.test(cpuinfo);
  } catch {
    return false;
  }
}
