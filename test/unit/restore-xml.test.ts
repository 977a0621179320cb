import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DOMParser } from '@xmldom/xmldom';
import { bootProbeXml, restoredDomainXml, RestoreXmlError } from '../../adapters/hypervisor/restore-xml';
import { isoDateOfDayLabel, nextVmToTest, type RestoreVmResult } from '../../domain/restore';
import { restoreReport } from '../../domain/restore-report';
import { formatRestoreVm, restoreVmRequest as restoreVmRequestOk } from '../../scripts/commands/restore';
import type { Config } from '../../config/schema';
import { checkOffsiteOf } from '../../scripts/commands/restore-from';

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

/** A VM wired to its host: a shared folder, passed-through devices, shared memory, the host's TPM and tty. */
const HOST_BOUND = `<domain type='kvm'>
  <name>files</name>
  <uuid>5dea22b3-1d52-d8f3-2516-782e98ab3fa1</uuid>
  <memory unit='KiB'>1048576</memory>
  <os><type arch='x86_64'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/var/lib/libvirt/images/files.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <filesystem type='mount' accessmode='passthrough'>
      <driver type='virtiofs'/>
      <source dir='/srv/projects'/>
      <target dir='projects'/>
    </filesystem>
    <hostdev mode='subsystem' type='pci' managed='yes'>
      <source><address domain='0x0000' bus='0x03' slot='0x00' function='0x0'/></source>
    </hostdev>
    <hostdev mode='subsystem' type='usb'><source><vendor id='0x1234'/><product id='0xbeef'/></source></hostdev>
    <interface type='hostdev' managed='yes'>
      <mac address='52:54:00:aa:bb:ce'/>
      <source><address type='pci' domain='0x0000' bus='0x04' slot='0x10' function='0x1'/></source>
    </interface>
    <interface type='network'><mac address='52:54:00:aa:bb:cf'/><source network='default'/></interface>
    <redirdev bus='usb' type='tcp'><source mode='connect' host='10.0.0.9' service='4000'/></redirdev>
    <smartcard mode='host'/>
    <shmem name='ivshmem0'><model type='ivshmem-plain'/><size unit='M'>4</size></shmem>
    <tpm model='tpm-tis'><backend type='passthrough'><device path='/dev/tpm0'/></backend></tpm>
    <input type='evdev'><source dev='/dev/input/event3'/></input>
    <input type='tablet' bus='usb'/>
    <serial type='dev'><source path='/dev/ttyS1'/><target port='1'/></serial>
    <serial type='pty'><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
  </devices>
</domain>`;

/** More devices tied to the host: file-backed memory, a fixed vsock address, sockets and pipes, iSCSI with auth. */
const HOST_SOCKETS = `<domain type='kvm'>
  <name>files</name>
  <devices>
    <disk type='file' device='disk'><source file='/var/lib/libvirt/images/files.qcow2'/><target dev='vda'/></disk>
    <hostdev mode='subsystem' type='scsi'>
      <source protocol='iscsi' name='iqn.2014-08.com.example:iscsi-pool/1'>
        <host name='iscsi.example.com' port='3260'/>
        <auth username='iscsi-user'><secret type='iscsi' usage='libvirtiscsi' uuid='c4dbe20b-b1a3-4ac1-b6e6-2ac97852ebb6'/></auth>
      </source>
      <address type='drive' controller='0' bus='0' target='0' unit='0'/>
    </hostdev>
    <memory model='nvdimm'><source><path>/var/lib/nvdimm/files.img</path></source><target><size unit='KiB'>524288</size></target></memory>
    <memory model='virtio-pmem' access='shared'><source><path>/srv/pmem/files</path></source><target><size unit='KiB'>524288</size></target></memory>
    <memory model='dimm'><target><size unit='KiB'>524288</size><node>0</node></target></memory>
    <vsock model='virtio'><cid auto='no' address='3'/></vsock>
    <serial type='tcp'><source mode='bind' host='0.0.0.0' service='2445'/><protocol type='telnet'/><target port='1'/></serial>
    <serial type='pty'><target port='0'/></serial>
    <console type='udp'><source mode='connect' host='10.0.0.9' service='2446'/><target type='virtio' port='1'/></console>
    <channel type='unix'><source mode='connect' path='/run/original/agent.sock'/><target type='virtio' name='org.example.agent'/></channel>
    <channel type='unix'><source mode='bind'/><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
    <parallel type='pipe'><source path='/tmp/original-pipe'/><target port='0'/></parallel>
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
    const { all, text } = parse(restoredDomainXml(SAVED, { ...options, network: 'link-down' }).xml);
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
    assert.equal(parse(restoredDomainXml(SAVED, { ...options, network: 'remove' }).xml).all('interface').length, 0);
    const kept = parse(restoredDomainXml(SAVED, { ...options, network: 'keep' }).xml);
    assert.equal(kept.all('interface').length, 2);
    assert.equal(kept.all('link')[0]?.getAttribute('state'), 'up');
    assert.ok(!kept.all('mac').some((m) => m.getAttribute('address') === '52:54:00:aa:bb:cc'));
  });

  it('strips secrets and moves file consoles next to the restored disks (one file per original path)', () => {
    const { xml } = restoredDomainXml(SAVED, { ...options, network: 'remove' });
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

  it('leaves out what ties the copy to the host (shared folders, passed-through devices) and says what', () => {
    const disks = [DISKS[0]!];
    const { xml, removed } = restoredDomainXml(HOST_BOUND, { ...options, disks, network: 'keep' });
    const { all } = parse(xml);
    for (const tag of ['filesystem', 'hostdev', 'redirdev', 'smartcard', 'shmem', 'tpm'])
      assert.equal(all(tag).length, 0, `no <${tag}> in the copy`);
    assert.doesNotMatch(xml, /\/srv\/projects|\/dev\/|10\.0\.0\.9|0x1234/);
    // What is the copy's own stays: its disk, a virtual tablet, pty serial and console, a network interface.
    assert.equal(all('disk').length, 1);
    assert.deepEqual(
      all('input').map((i) => i.getAttribute('type')),
      ['tablet'],
    );
    assert.deepEqual(
      all('serial').map((i) => i.getAttribute('type')),
      ['pty'],
    );
    assert.equal(all('console').length, 1);
    assert.deepEqual(
      all('interface').map((i) => i.getAttribute('type')),
      ['network'],
    );
    assert.deepEqual(removed, [
      '<filesystem> type=mount, accessmode=passthrough, source dir=/srv/projects, target dir=projects',
      '<hostdev> mode=subsystem, type=pci, managed=yes, source address domain=0x0000, source address bus=0x03, ' +
        'source address slot=0x00, source address function=0x0',
      '<hostdev> mode=subsystem, type=usb, source vendor id=0x1234, source product id=0xbeef',
      '<interface> type=hostdev, managed=yes, source address type=pci, source address domain=0x0000, ' +
        'source address bus=0x04, source address slot=0x10, source address function=0x1',
      '<redirdev> bus=usb, type=tcp, source mode=connect, source host=10.0.0.9, source service=4000',
      '<smartcard> mode=host',
      '<shmem> name=ivshmem0',
      '<tpm> model=tpm-tis',
      '<input> type=evdev, source dev=/dev/input/event3',
      '<serial> type=dev, source path=/dev/ttyS1, target port=1',
    ]);
    assert.deepEqual(restoredDomainXml(SAVED, { ...options, network: 'keep' }).removed, [], 'nothing to leave out');

    // The boot probe's copy is made the same way: none of them there either.
    const probe = bootProbeXml(HOST_BOUND, { ...options, disks }, '/work/probe/console.log');
    assert.doesNotMatch(probe, /<(filesystem|hostdev|redirdev|smartcard|shmem|tpm)\b|\/srv\/projects|\/dev\//);

    // The restore's result says it, on the command line and in the report.
    const result: RestoreVmResult = {
      ok: true,
      request: { vm: 'files', mode: 'as', newName: 'files-copy' },
      vm: 'files',
      stamp: '20261108T050000Z',
      domain: 'files-copy',
      pushed: [],
      keptAs: [],
      leftOut: removed.slice(0, 1),
      steps: [],
      startedAt: '2026-11-09T10:00:00Z',
      finishedAt: '2026-11-09T10:05:00Z',
    };
    assert.match(formatRestoreVm(result), /left out of the copy \(tied to the host\): <filesystem> .*\/srv\/projects/);
    const link = { namespace: 'default', workflowId: 'restore-files', runId: 'r1' };
    assert.match(
      restoreReport({ kind: 'vm', result, link }).text,
      /Left out of the copy \(tied to the original's host\): <filesystem> type=mount.*source dir=\/srv\/projects/,
    );
  });

  it('leaves out host-file memory, host sockets and pipes, makes vsock automatic, and says so without secrets', () => {
    const disks = [DISKS[0]!];
    const { xml, removed } = restoredDomainXml(HOST_SOCKETS, { ...options, disks, network: 'keep' });
    const { all } = parse(xml);
    assert.doesNotMatch(xml, /nvdimm|pmem|2445|2446|10\.0\.0\.9|\/run\/original|original-pipe|iscsi/);
    // What is the copy's own stays: plain DIMM memory, a pty serial, an automatic guest-agent socket.
    assert.deepEqual(
      all('memory').map((m) => m.getAttribute('model')),
      ['dimm'],
    );
    assert.deepEqual(
      all('serial').map((m) => m.getAttribute('type')),
      ['pty'],
    );
    assert.deepEqual(
      all('channel').map((c) => c.getElementsByTagName('target')[0]!.getAttribute('name')),
      ['org.qemu.guest_agent.0'],
    );
    assert.equal(all('console').length, 0);
    assert.equal(all('parallel').length, 0);
    const cid = all('cid')[0]!;
    assert.equal(cid.getAttribute('auto'), 'yes');
    assert.equal(cid.hasAttribute('address'), false, 'no fixed vsock address of the original');
    assert.deepEqual(removed, [
      '<hostdev> mode=subsystem, type=scsi, source protocol=iscsi, source name=iqn.2014-08.com.example:iscsi-pool/1, ' +
        'source host name=iscsi.example.com, source host port=3260',
      '<memory> model=nvdimm, source path=/var/lib/nvdimm/files.img',
      '<memory> model=virtio-pmem, access=shared, source path=/srv/pmem/files',
      '<serial> type=tcp, source mode=bind, source host=0.0.0.0, source service=2445, target port=1',
      '<console> type=udp, source mode=connect, source host=10.0.0.9, source service=2446, target type=virtio, target port=1',
      '<channel> type=unix, source mode=connect, source path=/run/original/agent.sock, target type=virtio, ' +
        'target name=org.example.agent',
      '<parallel> type=pipe, source path=/tmp/original-pipe, target port=0',
    ]);
    // The iSCSI login (its user, its secret's usage and UUID) is in neither the copy nor what is said of it.
    for (const secret of ['iscsi-user', 'libvirtiscsi', 'c4dbe20b', 'username', 'secret'])
      assert.ok(!removed.join('\n').includes(secret) && !xml.includes(secret), secret);
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

  it('restore vm --from offsite:<name>: the name in the request, nothing else; anything else refused', () => {
    assert.equal(restoreVmRequestOk('db', { as: 'db-copy', from: 'offsite:far' }).offsite, 'far');
    assert.equal(restoreVmRequestOk('db', { replace: true, set: 'S', from: 'offsite:far' }).offsite, 'far');
    assert.equal('offsite' in restoreVmRequestOk('db', { as: 'db-copy' }), false);
    assert.throws(() => restoreVmRequestOk('db', { as: 'db-copy', from: 'restic' }), /--from is offsite:<name>/);
    assert.throws(() => restoreVmRequestOk('db', { as: 'db-copy', from: 'offsite:a/b' }), /--from is offsite:<name>/);
    const config = { offsite: { far: {} } } as unknown as Config;
    checkOffsiteOf({ offsite: 'far' }, config);
    checkOffsiteOf({}, config);
    assert.throws(
      () => checkOffsiteOf({ offsite: 'near' }, config),
      /no off-site repository "near" in config \(have: far\)/,
    );
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
