import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  overlayDisksFromXml,
  overlayPathFor,
  parseOverlayPath,
  snapshotXml,
  xmlWithOriginals,
} from '../../adapters/hypervisor/overlays';

const STAMP = '20261127T083000Z';
const AREA = '/srv/images';
const BLOCK_OVERLAY = `/srv/images/.cluster-backup/overlays/%2Fdev%2Fvg0%2Fdb.cluster-backup-overlay-${STAMP}.qcow2`;

/** A running domain on two overlays: one over a disk file, one over a block device (as libvirt shows it). */
const LIVE = `<domain type='kvm'><name>db</name><devices>
  <disk type='file' device='disk'>
    <driver name='qemu' type='qcow2'/>
    <source file='/var/lib/libvirt/images/db.qcow2.cluster-backup-overlay-${STAMP}.qcow2'/>
    <backingStore type='file'><format type='qcow2'/><source file='/var/lib/libvirt/images/db.qcow2'/></backingStore>
    <target dev='vda' bus='virtio'/>
  </disk>
  <disk type='file' device='disk'>
    <driver name='qemu' type='qcow2'/>
    <source file='${BLOCK_OVERLAY}'/>
    <backingStore type='block'><format type='raw'/><source dev='/dev/vg0/db'/></backingStore>
    <target dev='vdb' bus='virtio'/>
  </disk>
</devices></domain>`;

describe('overlay files: where they go and what their names say', () => {
  it('puts a disk file`s overlay next to it and a block device`s in the image area, named after the device', () => {
    assert.equal(
      overlayPathFor({ source: '/vm/a b.raw', type: 'file' }, STAMP, AREA),
      `/vm/a b.raw.cluster-backup-overlay-${STAMP}.qcow2`,
    );
    assert.equal(overlayPathFor({ source: '/dev/vg0/db', type: 'block' }, STAMP, `${AREA}/`), BLOCK_OVERLAY);
    assert.throws(() => overlayPathFor({ source: '/vm/a', type: 'file' }, '../x', AREA), /bad stamp/);
  });

  it('reads the original back from the name, and refuses names that are not ours', () => {
    assert.deepEqual(parseOverlayPath(BLOCK_OVERLAY), { base: '/dev/vg0/db', stamp: STAMP, baseType: 'block' });
    assert.deepEqual(parseOverlayPath(`/vm/d.qcow2.cluster-backup-overlay-${STAMP}.qcow2`), {
      base: '/vm/d.qcow2',
      stamp: STAMP,
      baseType: 'file',
    });
    // An encoded-looking name outside the overlays folder is a disk file's overlay like any other.
    assert.equal(parseOverlayPath(`/vm/%2Fdev%2Fsda.cluster-backup-overlay-${STAMP}.qcow2`)?.baseType, 'file');
    assert.equal(
      parseOverlayPath(`${AREA}/.cluster-backup/overlays/%2F%E0%A4.cluster-backup-overlay-${STAMP}.qcow2`),
      undefined,
    );
    assert.equal(parseOverlayPath('/vm/d.qcow2'), undefined);
    assert.equal(parseOverlayPath(`/vm/d.cluster-backup-overlay-2026.qcow2`), undefined);
  });

  it('finds both overlays of a running domain, with their originals from the backing chain', () => {
    assert.deepEqual(
      overlayDisksFromXml(LIVE).map((d) => [d.target, d.base, d.baseFormat, d.baseType, d.baseKnown]),
      [
        ['vda', '/var/lib/libvirt/images/db.qcow2', 'qcow2', 'file', true],
        ['vdb', '/dev/vg0/db', 'raw', 'block', true],
      ],
    );
  });

  it('points each disk at its original again: a block device is a block disk again', () => {
    const back = xmlWithOriginals(LIVE, overlayDisksFromXml(LIVE));
    assert.deepEqual(overlayDisksFromXml(back), []);
    assert.match(
      back,
      /<disk type="file" device="disk">\s*<driver name="qemu" type="qcow2"\/>\s*<source file="\/var\/lib\/libvirt\/images\/db.qcow2"\/>/,
    );
    assert.match(
      back,
      /<disk type="block" device="disk">\s*<driver name="qemu" type="raw"\/>\s*<source dev="\/dev\/vg0\/db"\/>/,
    );
    assert.doesNotMatch(back, /backingStore|cluster-backup-overlay/);
  });

  it('asks libvirt for a file overlay on every disk of ours, a block device`s too', () => {
    const request = snapshotXml(xmlWithOriginals(LIVE, overlayDisksFromXml(LIVE)), [
      { target: 'vdb', overlay: BLOCK_OVERLAY },
    ]);
    assert.match(
      request,
      new RegExp(
        `<disk name="vdb" snapshot="external" type="file"><driver type="qcow2"/><source file="${BLOCK_OVERLAY}"/></disk>`,
      ),
    );
    assert.match(request, /<disk name="vda" snapshot="no"\/>/);
  });
});
