import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DOMParser } from '@xmldom/xmldom';
import { bootProbeXml, restoredDomainXml, RestoreXmlError } from '../../adapters/hypervisor/restore-xml';
import { isoDateOfDayLabel, nextVmToTest } from '../../domain/restore';
import { restoreVmRequest as restoreVmRequestOk } from '../../scripts/commands/restore';

const SAVED = `<domain type='kvm'>
  <name>db &amp; "primary"</name>
  <uuid>4dea22b3-1d52-d8f3-2516-782e98ab3fa0</uuid>
  <genid>43dc0cf8-809b-4adb-9bea-a9abb5f3d90d</genid>
  <metadata><app:x xmlns:app='urn:x'>owned by the original</app:x></metadata>
  <memory unit='KiB'>8388608</memory>
  <currentMemory unit='KiB'>8388608</currentMemory>
  <os><type arch='x86_64'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/var/lib/libvirt/images/db.qcow2'/>
      <backingStore/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='/var/lib/libvirt/images/db-data.raw'/>
      <target dev='vdb' bus='virtio'/>
      <auth username='admin'><secret type='ceph' usage='client.admin secret'/></auth>
    </disk>
    <disk type='file' device='cdrom'>
      <source file='/isos/install.iso'/>
      <target dev='sda' bus='sata'/>
      <readonly/>
    </disk>
    <interface type='bridge'>
      <mac address='52:54:00:aa:bb:cc'/>
      <source bridge='br0'/>
      <model type='virtio'/>
    </interface>
    <interface type='network'>
      <mac address='52:54:00:aa:bb:cd'/>
      <source network='default'/>
      <link state='up'/>
    </interface>
    <serial type='file'><source path='/var/log/db.console'/><target port='0'/></serial>
    <console type='file'><source path='/var/log/db.console'/><target type='serial' port='0'/></console>
    <graphics type='vnc' port='-1' passwd='hunter2'/>
  </devices>
</domain>`;

const DISKS = [
  { target: 'vda', path: '/images/db-copy/restored-x/vda.qcow2', format: 'qcow2' },
  { target: 'vdb', path: '/images/db-copy/restored-x/vdb.raw', format: 'raw' },
];

function parse(xml: string) {
  const doc = new DOMParser().parseFromString(xml, 'text/xml');
  const all = (tag: string) => Array.from(doc.getElementsByTagName(tag));
  return { doc, all, text: (tag: string) => all(tag)[0]?.textContent ?? undefined };
}

let macs = 0;
const options = {
  name: "db-copy 'restored'",
  uuid: '11111111-2222-4333-8444-555555555555',
  disks: DISKS,
  consoleDir: '/images/db-copy/restored-x',
  newMac: () => `52:54:00:00:00:${String(++macs).padStart(2, '0')}`,
};

describe('restored domain XML', () => {
  it('gets a new name, UUID and MACs, the restored disks, and no identity of the original', () => {
    const { all, text } = parse(restoredDomainXml(SAVED, { ...options, network: 'link-down' }));
    assert.equal(text('name'), "db-copy 'restored'");
    assert.equal(text('uuid'), options.uuid);
    assert.equal(all('genid').length, 0);
    assert.equal(all('metadata').length, 0);
    const disks = all('disk').filter((d) => d.getAttribute('device') === 'disk');
    assert.deepEqual(
      disks.map((d) => [
        d.getElementsByTagName('source')[0]!.getAttribute('file'),
        d.getElementsByTagName('driver')[0]!.getAttribute('type'),
      ]),
      [
        ['/images/db-copy/restored-x/vda.qcow2', 'qcow2'],
        ['/images/db-copy/restored-x/vdb.raw', 'raw'],
      ],
    );
    assert.equal(all('backingStore').length, 0, 'no backing chain of the original');
    const cdrom = all('disk').find((d) => d.getAttribute('device') === 'cdrom')!;
    assert.equal(cdrom.getElementsByTagName('source')[0]!.getAttribute('file'), '/isos/install.iso');
    const addresses = all('mac').map((m) => m.getAttribute('address'));
    assert.equal(addresses.length, 2);
    assert.ok(!addresses.includes('52:54:00:aa:bb:cc') && !addresses.includes('52:54:00:aa:bb:cd'));
    assert.deepEqual(
      all('interface').map((i) => Array.from(i.getElementsByTagName('link')).map((l) => l.getAttribute('state'))),
      [['down'], ['down']],
    );
  });

  it('removes the interfaces by default for boot tests, keeps them (new MACs) with keep', () => {
    assert.equal(parse(restoredDomainXml(SAVED, { ...options, network: 'remove' })).all('interface').length, 0);
    const kept = parse(restoredDomainXml(SAVED, { ...options, network: 'keep' }));
    assert.equal(kept.all('interface').length, 2);
    assert.equal(kept.all('link')[0]?.getAttribute('state'), 'up');
    assert.ok(!kept.all('mac').some((m) => m.getAttribute('address') === '52:54:00:aa:bb:cc'));
  });

  it('strips secrets and moves file consoles next to the restored disks (one file per original path)', () => {
    const xml = restoredDomainXml(SAVED, { ...options, network: 'remove' });
    assert.doesNotMatch(xml, /hunter2|passwd|<auth|secret/);
    const { all } = parse(xml);
    const paths = all('source')
      .map((s) => s.getAttribute('path'))
      .filter(Boolean);
    assert.deepEqual(paths, ['/images/db-copy/restored-x/console-0.log', '/images/db-copy/restored-x/console-0.log']);
  });

  it('refuses a disk with no restored image (the copy would write into the original)', () => {
    assert.throws(
      () => restoredDomainXml(SAVED, { ...options, disks: DISKS.slice(0, 1), network: 'remove' }),
      (err: unknown) => err instanceof RestoreXmlError && /"vdb"/.test(err.message),
    );
    assert.throws(
      () =>
        restoredDomainXml(SAVED, { ...options, disks: [...DISKS, { ...DISKS[0]!, target: 'vdz' }], network: 'remove' }),
      /no disk "vdz"/,
    );
    assert.throws(() => restoredDomainXml('<not-a-domain/>', { ...options, network: 'remove' }), RestoreXmlError);
  });

  it('a boot probe: capped memory, no network, one serial console to a file, destroyed on poweroff or reboot', () => {
    const { all, text } = parse(bootProbeXml(SAVED, { ...options, memoryMiB: 256 }, '/work/probe/console.log'));
    assert.equal(text('memory'), '256');
    assert.equal(all('memory')[0]!.getAttribute('unit'), 'MiB');
    assert.equal(all('interface').length, 0);
    assert.equal(all('console').length, 0);
    assert.deepEqual(
      all('serial').map((s) => s.getElementsByTagName('source')[0]!.getAttribute('path')),
      ['/work/probe/console.log'],
    );
    assert.equal(text('on_reboot'), 'destroy');
  });
});

describe('restore helpers', () => {
  it('rotates boot tests: never-tested VMs first, then the one tested longest ago', () => {
    const at = (testedAt: string) => ({ vm: '', stamp: '', passed: true, detail: '', testedAt });
    assert.equal(nextVmToTest(['web', 'db'], {}), 'db');
    assert.equal(nextVmToTest(['web', 'db'], { db: at('2026-11-01') }), 'web');
    assert.equal(nextVmToTest(['web', 'db'], { db: at('2026-11-08'), web: at('2026-11-01') }), 'web');
    assert.equal(nextVmToTest([], {}), undefined);
  });

  it('reads julian-day labels, leap years included, and refuses impossible days', () => {
    assert.equal(isoDateOfDayLabel('2026-331'), '2026-11-27');
    assert.equal(isoDateOfDayLabel('2024-366'), '2024-12-31');
    assert.throws(() => isoDateOfDayLabel('2025-366'), /no day 366/);
    assert.throws(() => isoDateOfDayLabel('2025-000'), /no day/);
    assert.throws(() => isoDateOfDayLabel('2025-1'), /YYYY-DDD/);
  });

  it('checks restore vm options: --as needs a safe new name, --replace a set', () => {
    assert.equal(restoreVmRequestOk('db', { as: 'db-copy' }).network, 'link-down');
    assert.equal(restoreVmRequestOk('db', { as: 'db-copy', keepNetwork: true }).network, 'keep');
    assert.throws(() => restoreVmRequestOk('db', {}), /--as NEW-NAME/);
    assert.throws(() => restoreVmRequestOk('db', { as: '../x' }), /refused name/);
    assert.throws(() => restoreVmRequestOk('db', { replace: true }), /--set STAMP/);
    assert.throws(() => restoreVmRequestOk('db', { replace: true, set: 'x', as: 'y' }), /exclude/);
    assert.deepEqual(restoreVmRequestOk('db', { replace: true, set: '20261127T083000Z', stop: true }), {
      vm: 'db',
      mode: 'replace',
      stamp: '20261127T083000Z',
      stop: true,
    });
  });
});
