import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createActivities, splitByTaskQueue, STORE_ACTIVITIES } from '../../activities';
import { createRestoreHypervisorActivities } from '../../activities/restore';
import { createRestoreStoreActivities, RESTORE_STORE_ACTIVITIES } from '../../activities/restore-store';
import { createServices } from '../../activities/services';
import { weeklyPolicy } from '../../activities/vm-policy';
import { vmStateOf } from '../../adapters/hypervisor/vm-state';
import { parseConfig } from '../../config/load';

const config = parseConfig(
  {
    hosts: { hv: { host: '127.0.0.1', user: 'backup', privateKeyFile: '/k', knownHostsFile: '/kh' } },
    hypervisor: {
      host: 'hv',
      imageArea: '/img',
      shutdownTimeoutSeconds: 200,
      overlayMergeBandwidthMiBps: 50,
      perVm: { db: { shutdownTimeoutSeconds: 600, imaging: 'offline', overlayReserveBytes: 5 } },
    },
    store: { root: '/store' },
  },
  'test',
  '/',
);
const services = createServices({ config, openSsh: () => Promise.reject(new Error('no SSH in this test')) });

describe('services the worker builds once', () => {
  it('resolves a VM policy in one place: the perVm exception over the hypervisor defaults', () => {
    const db = services.vmPolicy('hv', 'db');
    assert.equal(db.shutdownTimeoutSeconds, 600);
    assert.equal(db.imaging, 'offline');
    assert.equal(db.overlayReserveBytes, 5);
    assert.equal(db.overlayMergeBandwidthMiBps, 50, 'not per VM: the section’s');
    const other = services.vmPolicy('hv', 'web');
    assert.equal(other.shutdownTimeoutSeconds, 200);
    assert.equal(other.imaging, 'overlay');
    assert.equal(other.overlayReserveBytes, 1024 ** 3);
    assert.throws(() => services.vmPolicy('elsewhere', 'db'), /no hypervisor "elsewhere"/);
  });

  it('gives the weekly workflow exactly the four policy fields it had', () => {
    assert.deepEqual(weeklyPolicy(services.vmPolicy('hv', 'db')), {
      shutdownTimeoutSeconds: 600,
      forceOff: false,
      maxDowntimeSeconds: 3600,
      imaging: 'offline',
    });
  });

  it('builds the store image sets once, with the store root', () => {
    assert.equal(services.storeSets(), services.storeSets());
    assert.equal(services.storeSets().root, '/store');
  });
});

describe('restore activities: one factory per task queue', () => {
  it('the store-queue factory makes exactly the store-queue restore activities', () => {
    const names = Object.keys(createRestoreStoreActivities({ config, services })).sort();
    assert.deepEqual(names, [...RESTORE_STORE_ACTIVITIES].sort());
  });

  it('the hypervisor-queue factory makes none of them, and the worker registers each on its queue', () => {
    const onStore = new Set<string>(RESTORE_STORE_ACTIVITIES);
    const hypervisorSide = Object.keys(createRestoreHypervisorActivities({ config, services }));
    assert.ok(hypervisorSide.length >= 10);
    assert.deepEqual(
      hypervisorSide.filter((n) => onStore.has(n)),
      [],
    );
    const { store, remote } = splitByTaskQueue(createActivities({ config, services }));
    assert.deepEqual(Object.keys(store).sort(), [...STORE_ACTIVITIES].sort());
    for (const name of hypervisorSide) assert.ok(name in remote, `${name} on the main task queue`);
  });
});

describe('libvirt domain state: one reading of virsh domstate', () => {
  it('maps the words with or without a reason, and keeps the detail', () => {
    assert.deepEqual(vmStateOf('shut off (shutdown)\n'), { state: 'shut-off', detail: 'shut off (shutdown)' });
    assert.deepEqual(vmStateOf('running'), { state: 'running', detail: 'running' });
    assert.equal(vmStateOf('crashed (panicked)').state, 'shut-off');
    assert.equal(vmStateOf('paused (user)').state, 'paused');
    assert.equal(vmStateOf('in shutdown').state, 'transitional');
    assert.equal(vmStateOf('something new').state, 'transitional');
  });
});
