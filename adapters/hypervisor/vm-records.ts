import { vmFolder } from '../image-sets/image-sets';
import type { HeldDownRecord, RunRef } from '../../domain/vm-contracts';
import { parseRecord, releaseLock, takeLock, type LockFile, type LockOutcome, type LockRecord } from '../run-lock';
import { PASSABLE_UMASK, PRIVATE_UMASK } from '../ssh/remote-modes';
import { quote } from '../ssh/shell-quote';
import type { SshSession } from '../ssh/ssh-session';

export type { HeldDownRecord, RunRef };

export interface VmLock extends LockRecord {
  vm: string;
}

/**
 * The product's own records on the hypervisor, beside the image sets (`<imageArea>/.cluster-backup/`):
 * `held-down/<vm>.json` and `locks/<vm>.json`. VM names cannot start with "." (domain/vm-names.ts), so these
 * folders never meet a VM's.
 */
export class VmRecords {
  private readonly dir: string;

  constructor(
    private readonly ssh: SshSession,
    private readonly imageArea: string,
  ) {
    this.dir = `${imageArea}/.cluster-backup`;
  }

  /** Shell that creates a record's folder, private; the image area above it passable (see PASSABLE_UMASK). */
  private makeFolderOf(path: string): string {
    const folder = path.slice(0, path.lastIndexOf('/'));
    return `${PASSABLE_UMASK} && mkdir -p -- ${quote(this.imageArea)} && ${PRIVATE_UMASK} && mkdir -p -- ${quote(folder)}`;
  }

  private path(kind: 'held-down' | 'locks', vm: string): string {
    return `${this.dir}/${kind}/${vmFolder(vm)}.json`;
  }

  /** Written through a temporary name and flushed: a record exists whole or not at all. */
  private async write(path: string, record: unknown): Promise<void> {
    const tmp = `${path}.tmp`;
    await this.ssh.run(
      {
        shell: `${this.makeFolderOf(path)} && cat > ${quote(tmp)} && sync ${quote(tmp)} && mv -f ${quote(tmp)} ${quote(path)}`,
      },
      { input: JSON.stringify(record) },
    );
  }

  private async readText(path: string): Promise<string | undefined> {
    const result = await this.ssh.exec({ shell: `[ -f ${quote(path)} ] || exit 3; cat ${quote(path)}` });
    if (result.exitCode === 3) return undefined;
    if (result.exitCode !== 0) throw this.ssh.commandFailure(`cat ${path}`, result);
    return result.stdout.toString('utf8');
  }

  private async read<T>(path: string): Promise<T | undefined> {
    return parseRecord<T>(await this.readText(path));
  }

  writeHeldDown(record: HeldDownRecord): Promise<void> {
    return this.write(this.path('held-down', record.vm), record);
  }

  readHeldDown(vm: string): Promise<HeldDownRecord | undefined> {
    return this.read<HeldDownRecord>(this.path('held-down', vm));
  }

  async removeHeldDown(vm: string): Promise<void> {
    await this.ssh.run(['rm', '-f', '--', this.path('held-down', vm)]);
  }

  async listHeldDown(): Promise<HeldDownRecord[]> {
    const dir = `${this.dir}/held-down`;
    const out = await this.ssh.run({
      shell: `[ -d ${quote(dir)} ] || exit 0; for f in ${quote(dir)}/*.json; do [ -f "$f" ] && cat "$f" && printf '\\0'; done; true`,
    });
    return out
      .toString('utf8')
      .split('\0')
      .filter((t) => t.trim())
      .map((t) => parseRecord<HeldDownRecord>(t))
      .filter((r): r is HeldDownRecord => r !== undefined && typeof r.vm === 'string');
  }

  /** The VM's lock file on the hypervisor. */
  private lockFile(vm: string): LockFile {
    const path = this.path('locks', vm);
    return {
      create: async (content) =>
        (
          await this.ssh.exec(
            {
              shell: `${this.makeFolderOf(path)} && (set -C; cat > ${quote(path)})`,
            },
            { input: content },
          )
        ).exitCode === 0,
      read: () => this.readText(path),
      replace: (content) => this.write(path, JSON.parse(content)),
      remove: async () => {
        await this.ssh.run(['rm', '-f', '--', path]);
      },
    };
  }

  /** One run at a time per VM (see takeLock). */
  lock(vm: string, owner: RunRef, isClosed: (holder: RunRef) => Promise<boolean>): Promise<LockOutcome<VmLock>> {
    return takeLock<VmLock>(this.lockFile(vm), { vm, owner, since: new Date().toISOString() }, isClosed);
  }

  unlock(vm: string, owner: RunRef): Promise<void> {
    return releaseLock(this.lockFile(vm), owner);
  }
}
