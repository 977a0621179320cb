import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { SandboxHypervisor } from '../../scripts/sandbox/libvirt-host';

const MiB = 1024 * 1024;

/** Sectors 0-2 of a disk (a file, or an overlay read through its backing chain): boot, state, tick markers. */
export function markers(root: string, file: string, format: string): [string, string, string] {
  const raw = join(root, `markers-${process.hrtime.bigint()}.raw`);
  execFileSync('qemu-img', ['convert', '-U', '-f', format, '-O', 'raw', file, raw]);
  const head = readFileSync(raw).subarray(0, 1536);
  rmSync(raw);
  return [0, 1, 2].map((i) =>
    head
      .subarray(i * 512, (i + 1) * 512)
      .toString()
      .trim(),
  ) as [string, string, string];
}

/** The counter of the guest's tick marker (it writes one a second), NaN for anything else. */
export const tickOf = (marker: string) => Number(/^cbguest tick (\d+)$/.exec(marker)?.[1] ?? NaN);

/** The PID of the QEMU running a guest: the same PID before and after means the guest never stopped. */
export function qemuPid(name: string): number | undefined {
  for (const entry of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    try {
      const args = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (args.some((a) => a.startsWith(`guest=${name},`))) return Number(entry);
    } catch {
      // ended while we looked
    }
  }
  return undefined;
}

/**
 * Writes `mib` mebibytes of `byte` at `offsetMiB` into a running guest's disk, as the guest would. Its
 * success is not proof: virsh hears nothing of a write QEMU failed (see overlay-faults.test.ts).
 */
export async function guestWrite(
  hypervisor: SandboxHypervisor,
  vm: string,
  target: string,
  byte: number,
  offsetMiB: number,
  mib: number,
): Promise<void> {
  const said = await hypervisor.virsh(
    'qemu-monitor-command',
    '--hmp',
    '--domain',
    vm,
    `qemu-io -d /machine/peripheral/virtio-disk${target.charCodeAt(2) - 97}/virtio-backend "write -P 0x${byte.toString(16)} ${offsetMiB}M ${mib}M"`,
  );
  // qemu-io reports to QEMU's stdout (the domain's log), a failed write too: text here is the monitor refusing.
  if (said.trim() && !said.includes(`wrote ${mib * MiB}/${mib * MiB} bytes`)) {
    throw new Error(`qemu-io did not write: ${said}`);
  }
}

/** Every byte of `mib` MiB at `offsetMiB` in a raw file equals `byte`. */
export function holds(file: string, byte: number, offsetMiB: number, mib: number): boolean {
  const data = readFileSync(file).subarray(offsetMiB * MiB, (offsetMiB + mib) * MiB);
  return data.length === mib * MiB && data.every((b) => b === byte);
}
