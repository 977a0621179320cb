import { execFile, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { recordOwnedFolder, startChild, stopProcess } from './processes';
import { GUEST_DIR, PROJECT_ROOT } from './paths';
import { processAlive } from '../../adapters/local/process-alive';

const run = promisify(execFile);

/** Every sandbox guest's name starts with this, so that stale ones can be recognised and removed. */
export const GUEST_PREFIX = 'cbtest-';
/** What a sandbox guest prints on its serial console once booted (build-guest.sh): a boot test's pattern. */
export const GUEST_READY = 'cbguest: ready';

export interface GuestOptions {
  /** Must start with GUEST_PREFIX. */
  name: string;
  /** false: the guest starts no acpid and ignores shutdown requests. */
  acpi?: boolean;
  diskMiB?: number;
  /** Format of the boot disk (vda). */
  diskFormat?: 'qcow2' | 'raw';
  memoryMiB?: number;
  /** More disks after vda: a block device (a loop device), or anything libvirt takes, as raw <disk> XML. */
  extraDisks?: string[];
}

export interface SandboxGuest {
  name: string;
  disk: string;
  consoleLog: string;
  /** Waits until the guest has finished booting `boots` times since it was defined (its acpid is then listening). */
  waitReady(boots: number, timeoutMs?: number): Promise<void>;
}

export interface SandboxHypervisor {
  /** libvirt URI, as the product's config and virsh take it. */
  uri: string;
  dir: string;
  virsh(...args: string[]): Promise<string>;
  defineGuest(options: GuestOptions): Promise<SandboxGuest>;
  state(name: string): Promise<string>;
  /** Stops libvirtd (a package upgrade, a crash): running guests go on; virsh fails until `startDaemon`. */
  stopDaemon(): Promise<void>;
  startDaemon(): Promise<void>;
  stop(): Promise<void>;
}

function xmlEscape(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

/** What libvirtd needs on this kind of machine (no systemd, root): see shared/recipes/libvirt.md. */
async function prepareSystem(): Promise<void> {
  try {
    await run('id', ['-u', 'libvirt-qemu']);
  } catch {
    await run('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', 'libvirt-qemu']);
  }
  mkdirSync('/var/log/libvirt', { recursive: true });
  mkdirSync('/etc/libvirt', { recursive: true });
  const qemuConf = '/etc/libvirt/qemu.conf';
  // Without user/group root, libvirtd re-probes QEMU on every call (a define takes 44 s instead of 0.02 s).
  if (!existsSync(qemuConf)) writeFileSync(qemuConf, 'user = "root"\ngroup = "root"\n');
  else if (!/^\s*user\s*=\s*"root"/m.test(readFileSync(qemuConf, 'utf8'))) {
    throw new Error(`${qemuConf} exists without user = "root": the sandbox hypervisor needs it (see shared recipe)`);
  }
}

async function waitFor(check: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const MACHINE_LOCK = join(tmpdir(), 'cluster-backup-sandbox-hypervisor.lock');

/**
 * libvirtd's state folders are global and a new sandbox removes stale guests: two sandboxes at once (two test
 * files, two checkouts) would destroy each other's guests. A folder created atomically is the lock; its owner
 * PID lets a later process take over from one that died without releasing it.
 */
async function lockMachineWide(timeoutMs = 60 * 60_000): Promise<() => void> {
  const owner = join(MACHINE_LOCK, 'pid');
  await waitFor(
    () => {
      try {
        mkdirSync(MACHINE_LOCK);
        writeFileSync(owner, String(process.pid));
        return true;
      } catch {
        const pid = Number(existsSync(owner) ? readFileSync(owner, 'utf8') : NaN);
        if (Number.isInteger(pid) && !processAlive(pid)) rmSync(MACHINE_LOCK, { recursive: true, force: true });
        return false;
      }
    },
    timeoutMs,
    `the sandbox hypervisor lock ${MACHINE_LOCK} (another sandbox hypervisor is running)`,
  );
  return () => rmSync(MACHINE_LOCK, { recursive: true, force: true });
}

/**
 * A real libvirtd (QEMU, software emulation) with its own socket folder, run in the foreground as a child
 * of this process with virtlogd. One at a time per machine (see lockMachineWide).
 */
export async function startHypervisor(dir: string, options: { isolated?: boolean } = {}): Promise<SandboxHypervisor> {
  if (options.isolated) {
    const launch = await privateLibvirtFolders(dir);
    return startLockedHypervisor(dir, () => undefined, launch).catch(async (err: unknown) => {
      await launch.stop();
      throw err;
    });
  }
  const unlock = await lockMachineWide();
  try {
    return await startLockedHypervisor(dir, unlock);
  } catch (err) {
    unlock();
    throw err;
  }
}

/** Runs a program: here, or in the mount namespace of an isolated hypervisor. */
type Launch = { start: (command: string, args: string[], log: number) => ChildProcess; stop: () => Promise<void> };

/**
 * A second hypervisor on the same machine (a cluster of several): its libvirtd and virtlogd in a mount
 * namespace of their own, where libvirt's global folders (definitions, run state, lib) are folders of this
 * sandbox. Its guests never meet the first hypervisor's, and neither needs the machine-wide lock of the other.
 */
async function privateLibvirtFolders(dir: string): Promise<Launch> {
  const binds = [
    ['etc-qemu', '/etc/libvirt/qemu'],
    ['run', '/run/libvirt'],
    ['lib', '/var/lib/libvirt'],
  ].map(([own, global]) => {
    mkdirSync(join(dir, 'private', own!), { recursive: true });
    mkdirSync(global!, { recursive: true });
    return [join(dir, 'private', own!), global!];
  });
  const script = `${binds.map((_, i) => `mount --bind "$${2 * i + 1}" "$${2 * i + 2}"`).join(' && ')} && exec sleep infinity`;
  const holder = startChild('/usr/bin/unshare', [
    '--mount',
    '--propagation',
    'private',
    'sh',
    '-c',
    script,
    'sh',
    ...binds.flat(),
  ]);
  const comm = () => {
    try {
      return readFileSync(`/proc/${holder.pid}/comm`, 'utf8').trim();
    } catch {
      return '';
    }
  };
  await waitFor(() => comm() === 'sleep' || holder.exitCode !== null, 10_000, 'the private libvirt mount namespace');
  if (holder.exitCode !== null) throw new Error(`the private libvirt mount namespace ended (${holder.exitCode})`);
  return {
    start: (command, args, log) =>
      startChild('/usr/bin/nsenter', ['-t', String(holder.pid), '-m', '--', command, ...args], {
        stdio: ['ignore', log, log],
      }),
    stop: () => stopProcess(holder),
  };
}

const HERE: Launch = {
  start: (command, args, log) => startChild(command, args, { stdio: ['ignore', log, log] }),
  stop: async () => undefined,
};

async function startLockedHypervisor(dir: string, unlock: () => void, launch = HERE): Promise<SandboxHypervisor> {
  await prepareSystem();
  if (!existsSync(join(GUEST_DIR, 'vmlinuz'))) {
    await run('bash', [join(PROJECT_ROOT, 'scripts', 'sandbox', 'build-guest.sh'), GUEST_DIR]);
  }
  recordOwnedFolder(dir); // the guests' disks live here: how the test runner recognises our QEMUs
  const sockDir = join(dir, 'sock');
  mkdirSync(sockDir, { recursive: true });
  const conf = join(dir, 'libvirtd.conf');
  writeFileSync(
    conf,
    [
      `unix_sock_dir = "${sockDir}"`,
      'auth_unix_rw = "none"',
      'auth_unix_ro = "none"',
      'unix_sock_rw_perms = "0770"',
      '',
    ].join('\n'),
  );
  const log = openSync(join(dir, 'libvirtd.log'), 'a');
  const virtlogd = launch.start('/usr/sbin/virtlogd', ['-p', join(dir, 'virtlogd.pid')], log);
  const uri = `qemu:///system?socket=${sockDir}/libvirt-sock`;
  const virsh = async (...args: string[]) => (await run('virsh', ['-q', '-c', uri, ...args])).stdout;
  let libvirtd: ChildProcess | undefined;
  const startDaemon = async () => {
    libvirtd = launch.start('/usr/sbin/libvirtd', ['-f', conf, '-p', join(dir, 'libvirtd.pid')], log);
    await waitFor(() => existsSync(join(sockDir, 'libvirt-sock')), 20_000, 'the libvirtd socket');
    await virsh('version'); // the first connection probes QEMU's capabilities (~8 s)
  };
  const stopDaemon = async () => {
    if (libvirtd) await stopProcess(libvirtd);
    libvirtd = undefined;
  };
  await startDaemon();
  // Definitions outlive libvirtd (they live in /etc/libvirt/qemu): remove our own left by a killed run.
  for (const stale of (await virsh('list', '--all', '--name')).split('\n').filter((n) => n.startsWith(GUEST_PREFIX))) {
    await virsh('destroy', '--domain', stale).catch(() => undefined);
    await virsh('undefine', '--domain', stale);
  }

  const defined: string[] = [];
  let index = 0;
  return {
    uri,
    dir,
    virsh,
    state: async (name) => (await virsh('domstate', '--domain', name)).trim(),
    stopDaemon,
    startDaemon,
    async defineGuest({
      name,
      acpi = true,
      diskMiB = 16,
      diskFormat = 'qcow2',
      memoryMiB = 128,
      extraDisks = [],
    }: GuestOptions): Promise<SandboxGuest> {
      if (!name.startsWith(GUEST_PREFIX)) throw new Error(`sandbox guest names start with ${GUEST_PREFIX}: ${name}`);
      const id = `guest-${index++}`;
      const disk = join(dir, `${id}.${diskFormat}`);
      const consoleLog = join(dir, `${id}.console.log`);
      await run('qemu-img', ['create', '-q', '-f', diskFormat, disk, `${diskMiB}M`]);
      // QEMU appends to the console log: one left by an earlier sandbox in this folder (a second `npm start`)
      // would already say "ready" and let a run ask a still-booting guest, which ignores ACPI, to shut down.
      rmSync(consoleLog, { force: true });
      const xml = `<domain type='qemu'>
  <name>${xmlEscape(name)}</name>
  <memory unit='MiB'>${memoryMiB}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>${join(GUEST_DIR, 'vmlinuz')}</kernel>
    <initrd>${join(GUEST_DIR, 'initramfs.gz')}</initrd>
    <cmdline>console=ttyS0 panic=-1 quiet${acpi ? '' : ' cbguest.acpi=off'}</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='${diskFormat}'/>
      <source file='${disk}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    ${extraDisks.join('\n    ')}
    <serial type='file'><source path='${consoleLog}' append='on'/><target port='0'/></serial>
    <memballoon model='none'/>
  </devices>
</domain>`;
      const xmlFile = join(dir, `${id}.xml`);
      writeFileSync(xmlFile, xml);
      await virsh('define', xmlFile);
      defined.push(name);
      return {
        name,
        disk,
        consoleLog,
        waitReady: (boots, timeoutMs = 60_000) =>
          waitFor(
            () =>
              existsSync(consoleLog) &&
              (readFileSync(consoleLog, 'utf8').match(new RegExp(GUEST_READY, 'g'))?.length ?? 0) >= boots,
            timeoutMs,
            `${name} to finish boot ${boots}`,
          ),
      };
    },
    async stop() {
      for (const name of defined) {
        await virsh('destroy', '--domain', name).catch(() => undefined);
        await virsh('undefine', '--domain', name).catch(() => undefined);
      }
      await stopDaemon();
      await stopProcess(virtlogd);
      await launch.stop();
      unlock();
    },
  };
}
