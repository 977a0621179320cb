import type { PreparedDisk } from '../../../domain/vm-contracts';
import type { VmImage } from '../../../domain/weekly-summary';
import type { Cycle } from '../cycle';

export interface VerifiedSet {
  images: VmImage[];
  domainXml: string;
}

/** Each image checked (size, qemu-img check, checksum) and the set recorded as verified. */
export const verify = (c: Cycle, disks: PreparedDisk[]): Promise<VerifiedSet> =>
  c.step.run('verifying', async () => {
    const { vm, stamp } = c;
    const checks = c.undo.push('discard', 'end remote checks', () => c.act.remote.discardPartials(vm, stamp));
    const images: VmImage[] = [];
    for (const disk of disks) {
      const options = { summary: `VM ${vm}: disk ${disk.target}` };
      images.push(await c.act.checking.verifyImage.executeWithOptions(options, [vm, stamp, disk]));
    }
    const domainXml = await c.act.remote.recordVerifiedSet(vm, stamp, images);
    c.result.images = images;
    checks.drop();
    return { images, domainXml };
  });
