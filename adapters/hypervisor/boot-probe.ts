import { randomUUID } from 'node:crypto';
import { CONSOLE_TAIL_BYTES, matchingConsoleLine, wholeLinesOfTail } from '../../domain/console-tail';
import { PASSABLE_UMASK, PRIVATE_UMASK } from '../ssh/remote-modes';
import { quote } from '../ssh/shell-quote';
import type { SshSession } from '../ssh/ssh-session';
import type { HypervisorDriver } from './driver';
import { QemuImg } from './qemu-img';
import { bootProbeXml, type RestoredDisk } from './restore-xml';

export interface BootProbeRequest {
  ssh: SshSession;
  /** The hypervisor's driver (over the same session): the throw-away domain is created and destroyed by it. */
  driver: HypervisorDriver;
  /** The VM's saved definition (the manifest's domainXml). */
  savedXml: string;
  /** The pushed images, left untouched: the guest writes into overlays. */
  images: RestoredDisk[];
  /** The throw-away domain's name: the same on a retry, so a crashed attempt's domain is destroyed first. */
  name: string;
  /** A folder on the hypervisor for the overlays, the console log and the definition; removed afterwards. */
  workDir: string;
  memoryMiB: number;
  timeoutSeconds: number;
  /** When the time limit started (epoch ms; default: now): a retried probe gets only what is left of it. */
  startedAtMs?: number;
  /** A regular expression a serial-console line must match for the guest to count as alive. */
  pattern: string;
  signal?: AbortSignal;
  onState?: (state: string) => void;
}

export interface BootProbeResult {
  passed: boolean;
  detail: string;
  /** The end of what the guest printed, for the report. */
  consoleTail: string;
  bootSeconds: number;
}

const POLL_MS = 500;

/** When a probe gives up: the time limit runs from `startedAtMs`, so a retried probe gets only what is left. */
export function probeDeadlineMs(startedAtMs: number, timeoutSeconds: number): number {
  return startedAtMs + timeoutSeconds * 1000;
}
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Boots a stored image set in isolation: a transient domain (gone once destroyed) with a new name and UUID,
 * no network, capped memory, its disks qcow2 overlays over the pushed images. Passes when libvirt says
 * running AND the serial console shows a line matching the pattern within the timeout. The domain and the
 * work folder are removed on every way out.
 */
export async function bootProbe(req: BootProbeRequest): Promise<BootProbeResult> {
  const { ssh, driver, workDir } = req;
  const qemuImg = new QemuImg(ssh);
  const { name } = req;
  const consoleLog = `${workDir}/console.log`;
  const lineMatches = new RegExp(req.pattern, 'm');
  const started = Date.now();
  let consoleTail = '';
  try {
    await driver.destroyIfPresent(name); // left by a crashed attempt, if any
    // QEMU passes through the folder to the overlays; the console log is created 0600 before it writes there.
    await ssh.run({
      shell: `${PASSABLE_UMASK} && rm -rf ${quote(workDir)} && mkdir -p -- ${quote(workDir)} && : > ${quote(consoleLog)}`,
    });
    const overlays: RestoredDisk[] = [];
    for (const image of req.images) {
      const overlay = `${workDir}/${image.target}.overlay.qcow2`;
      await qemuImg.createOverlay(overlay, { path: image.path, format: image.format }, PRIVATE_UMASK);
      overlays.push({ target: image.target, path: overlay, format: 'qcow2' });
    }
    const xml = bootProbeXml(
      req.savedXml,
      {
        name,
        uuid: randomUUID(),
        disks: overlays,
        consoleDir: workDir,
        memoryMiB: req.memoryMiB,
        description: 'cluster-backup restore test: throw-away, removed when the test ends',
      },
      consoleLog,
    );
    await driver.createTransient(xml, req.signal);

    const deadline = probeDeadlineMs(req.startedAtMs ?? started, req.timeoutSeconds);
    for (;;) {
      const now = await driver.state(name);
      const state = now.state === 'missing' ? 'gone' : now.detail;
      req.onState?.(state);
      const tail = `tail -c ${CONSOLE_TAIL_BYTES + 1} ${quote(consoleLog)} 2>/dev/null`;
      consoleTail = wholeLinesOfTail((await ssh.exec({ shell: tail })).stdout);
      const bootSeconds = (Date.now() - started) / 1000;
      if (now.state !== 'running') {
        return {
          passed: false,
          detail: `the guest stopped (${state}) before it showed life`,
          consoleTail,
          bootSeconds,
        };
      }
      const line = matchingConsoleLine(consoleTail, lineMatches);
      if (line !== undefined) {
        return { passed: true, detail: `running, console: ${line}`, consoleTail, bootSeconds };
      }
      if (Date.now() >= deadline || req.signal?.aborted) {
        return {
          passed: false,
          detail: `running, but no console line matching /${req.pattern}/ within ${req.timeoutSeconds} s`,
          consoleTail,
          bootSeconds,
        };
      }
      await sleep(POLL_MS);
    }
  } finally {
    await driver.destroyIfPresent(name).catch(() => undefined);
    await ssh.run(['rm', '-rf', workDir]).catch(() => undefined);
  }
}
