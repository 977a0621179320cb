import { RemoteCommandError } from '../ssh/remote-command-error';
import type { ExecResult, SshSession } from '../ssh/ssh-session';
import { domainDisks, withoutSecrets } from './domain-xml';
import type { HypervisorDriver, VmDisk, VmPowerState, VmState } from './driver';

const STATES: Record<string, VmPowerState> = {
  running: 'running',
  'shut off': 'shut-off',
  paused: 'paused',
  'in shutdown': 'transitional',
  blocked: 'running',
  idle: 'running',
  pmsuspended: 'pmsuspended',
  crashed: 'shut-off',
  dying: 'transitional',
};

const NO_DOMAIN = /failed to get domain|domain not found|no domain with matching name/i;

/** libvirt driven by `virsh -c <uri>` over SSH. Every domain name goes in as a quoted `--domain` value. */
export class LibvirtDriver implements HypervisorDriver {
  constructor(
    private readonly ssh: SshSession,
    private readonly uri: string,
  ) {}

  private virsh(args: string[]): Promise<ExecResult> {
    return this.ssh.exec(['virsh', '-q', '-c', this.uri, ...args]);
  }

  private async virshOk(args: string[], alsoFine?: RegExp): Promise<string> {
    const result = await this.virsh(args);
    if (result.exitCode === 0 || (alsoFine && alsoFine.test(result.stderr))) return result.stdout.toString('utf8');
    const failure = this.ssh.commandFailure(['virsh', ...args].join(' '), result);
    if (NO_DOMAIN.test(result.stderr)) {
      // Not retryable: a VM that does not exist will not appear by retrying.
      throw new RemoteCommandError(failure.message, { ...failure.remote, kind: 'not-found' });
    }
    throw failure;
  }

  async listVms(): Promise<{ name: string; state: VmPowerState }[]> {
    const names = (await this.virshOk(['list', '--all', '--name'])).split('\n').filter(Boolean);
    return Promise.all(names.map(async (name) => ({ name, state: (await this.state(name)).state })));
  }

  async state(vm: string): Promise<VmState> {
    const result = await this.virsh(['domstate', '--reason', '--domain', vm]);
    if (result.exitCode !== 0 && NO_DOMAIN.test(result.stderr)) return { state: 'missing', detail: 'no such domain' };
    if (result.exitCode !== 0) throw this.ssh.commandFailure(`virsh domstate ${vm}`, result);
    const detail = result.stdout.toString('utf8').trim();
    const word = detail.replace(/\s*\(.*\)$/, '');
    return { state: STATES[word] ?? 'transitional', detail };
  }

  async disks(vm: string): Promise<VmDisk[]> {
    const xml = await this.virshOk(['dumpxml', '--inactive', '--domain', vm]);
    return domainDisks(xml)
      .filter((d) => d.device === 'disk' || d.device === 'lun')
      .map((d) => ({ target: d.target, type: d.type, source: d.source ?? '', format: d.format }));
  }

  async persistent(vm: string): Promise<boolean> {
    const info = await this.virshOk(['dominfo', '--domain', vm]);
    return /^Persistent:\s*yes\s*$/im.test(info);
  }

  async definition(vm: string): Promise<string> {
    return withoutSecrets(await this.virshOk(['dumpxml', '--inactive', '--domain', vm]));
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
}
