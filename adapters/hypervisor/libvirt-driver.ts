import { RemoteCommandError } from '../ssh/remote-command-error';
import { quote } from '../ssh/shell-quote';
import type { ExecResult, SshSession } from '../ssh/ssh-session';
import { domainDisks, withoutSecrets } from './domain-xml';
import type { BlockJob, HypervisorDriver, VmDisk, VmState } from './driver';
import { vmStateOf } from './vm-state';

const NO_DOMAIN = /failed to get domain|domain not found|no domain with matching name/i;

/** `virsh blockjob --raw`: nothing when the disk has no job. */
export function parseBlockJob(text: string): BlockJob | undefined {
  const fields = Object.fromEntries(
    text
      .split('\n')
      .map((line) => line.trim().split('='))
      .filter((kv) => kv.length === 2),
  ) as Record<string, string>;
  if (!fields.type) return undefined;
  return { type: fields.type, cur: Number(fields.cur), end: Number(fields.end) };
}

/**
 * libvirt driven by `virsh -c <uri>` over SSH: the one place in the product that speaks virsh. Every
 * domain name goes in as a quoted `--domain` value.
 */
export class LibvirtDriver implements HypervisorDriver {
  constructor(
    private readonly ssh: SshSession,
    private readonly uri: string,
  ) {}

  private words(args: string[]): string[] {
    return ['virsh', '-q', '-c', this.uri, ...args];
  }

  private virsh(args: string[]): Promise<ExecResult> {
    return this.ssh.exec(this.words(args));
  }

  private check(args: string[], result: ExecResult, alsoFine?: RegExp): string {
    if (result.exitCode === 0 || (alsoFine && alsoFine.test(result.stderr))) return result.stdout.toString('utf8');
    const failure = this.ssh.commandFailure(['virsh', ...args].join(' '), result);
    if (NO_DOMAIN.test(result.stderr)) {
      // Not retryable: a VM that does not exist will not appear by retrying.
      throw new RemoteCommandError(failure.message, { ...failure.remote, kind: 'not-found' });
    }
    throw failure;
  }

  private async virshOk(args: string[], alsoFine?: RegExp): Promise<string> {
    return this.check(args, await this.virsh(args), alsoFine);
  }

  /**
   * virsh with an XML document it reads from a file (`{}` in `args` is the file's place): written to a
   * temporary file on the hypervisor (0600, removed on exit), since /dev/stdin is not a file virsh can open
   * on every transport.
   */
  private async virshWithXml(args: string[], xml: string, signal?: AbortSignal): Promise<string> {
    const line = this.words(args)
      .map((w) => (w === '{}' ? '"$xml"' : quote(w)))
      .join(' ');
    const script = ['xml=$(mktemp) || exit 1', 'trap \'rm -f "$xml"\' EXIT', 'cat > "$xml"', line].join('\n');
    const result = await this.ssh.exec({ shell: script }, { input: xml, ...(signal ? { signal } : {}) });
    return this.check(args.filter((w) => w !== '{}'), result);
  }

  async listVms(): Promise<{ name: string; state: VmState['state'] }[]> {
    const names = (await this.virshOk(['list', '--all', '--name'])).split('\n').filter(Boolean);
    return Promise.all(names.map(async (name) => ({ name, state: (await this.state(name)).state })));
  }

  async state(vm: string): Promise<VmState> {
    const result = await this.virsh(['domstate', '--reason', '--domain', vm]);
    if (result.exitCode !== 0 && NO_DOMAIN.test(result.stderr)) return { state: 'missing', detail: 'no such domain' };
    if (result.exitCode !== 0) throw this.ssh.commandFailure(`virsh domstate ${vm}`, result);
    return vmStateOf(result.stdout.toString('utf8'));
  }

  async uuid(vm: string): Promise<string> {
    return (await this.virshOk(['domuuid', '--domain', vm])).trim();
  }

  /** The domain's XML as libvirt has it: the live definition, or the inactive one (what the next boot uses). */
  async domainXml(vm: string, inactive: boolean): Promise<string> {
    return this.virshOk(['dumpxml', ...(inactive ? ['--inactive'] : []), '--domain', vm]);
  }

  async disks(vm: string): Promise<VmDisk[]> {
    return domainDisks(await this.domainXml(vm, true))
      .filter((d) => d.device === 'disk' || d.device === 'lun')
      .map((d) => ({ target: d.target, type: d.type, source: d.source ?? '', format: d.format }));
  }

  async persistent(vm: string): Promise<boolean> {
    const info = await this.virshOk(['dominfo', '--domain', vm]);
    return /^Persistent:\s*yes\s*$/im.test(info);
  }

  async definition(vm: string): Promise<string> {
    return withoutSecrets(await this.domainXml(vm, true));
  }

  async define(xml: string): Promise<void> {
    await this.virshWithXml(['define', '{}'], xml);
  }

  async createTransient(xml: string, signal?: AbortSignal): Promise<void> {
    await this.virshWithXml(['create', '{}'], xml, signal);
  }

  async requestShutdown(vm: string): Promise<void> {
    await this.virshOk(['shutdown', '--mode', 'acpi', '--domain', vm], /domain is not running/i);
  }

  async start(vm: string): Promise<void> {
    await this.virshOk(['start', '--domain', vm], /domain is already active/i);
  }

  async resume(vm: string, from: 'paused' | 'pmsuspended'): Promise<void> {
    if (from === 'pmsuspended') await this.virshOk(['dompmwakeup', '--domain', vm]);
    else await this.virshOk(['resume', '--domain', vm], /domain is not paused|not paused/i);
  }

  async forceOff(vm: string): Promise<void> {
    await this.virshOk(['destroy', '--domain', vm], /domain is not running/i);
  }

  async destroyIfPresent(vm: string): Promise<void> {
    await this.virshOk(['destroy', '--domain', vm], new RegExp(`domain is not running|${NO_DOMAIN.source}`, 'i'));
  }

  // ---- libvirt only: disk-only snapshots and block jobs (low-downtime imaging, see overlays.ts) ----

  /** A disk-only snapshot without metadata, as `snapshotXml` asks for it: libvirt creates the overlays. */
  async snapshotDiskOnly(vm: string, snapshotXml: string): Promise<void> {
    await this.virshWithXml(
      ['snapshot-create', '--domain', vm, '--disk-only', '--no-metadata', '--xmlfile', '{}'],
      snapshotXml,
    );
  }

  async blockJob(vm: string, target: string): Promise<BlockJob | undefined> {
    return parseBlockJob(await this.virshOk(['blockjob', '--domain', vm, target, '--raw']));
  }

  /** Starts an active commit of the disk's top layer only (`--shallow`), optionally limited in MiB/s. */
  async blockCommitActive(vm: string, target: string, bandwidthMiBps?: number): Promise<void> {
    const bandwidth = bandwidthMiBps ? ['--bandwidth', String(bandwidthMiBps)] : [];
    await this.virshOk(['blockcommit', '--domain', vm, target, '--active', '--shallow', ...bandwidth]);
  }

  async blockJobPivot(vm: string, target: string): Promise<void> {
    await this.virshOk(['blockjob', '--domain', vm, target, '--pivot']);
  }

  /** Best effort: a job that ended meanwhile is fine. */
  async blockJobAbort(vm: string, target: string): Promise<void> {
    await this.virsh(['blockjob', '--domain', vm, target, '--abort']);
  }
}
