import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isHypervisorOutage, type RemoteFailureDetails } from '../../adapters/ssh/remote-command-error';

const command = (stderr: string, exitCode = 1): RemoteFailureDetails => ({
  kind: 'command',
  host: 'hv1',
  command: 'virsh -c qemu:///system domstate db',
  exitCode,
  stderr,
});

describe('hypervisor outage classification', () => {
  it('takes libvirtd gone or restarting as an outage (virsh`s own words)', () => {
    for (const stderr of [
      "error: failed to connect to the hypervisor\nerror: Failed to connect socket to '/var/run/libvirt/libvirt-sock': No such file or directory",
      "error: failed to connect to the hypervisor\nerror: Failed to connect socket to '/run/libvirt/virtqemud-sock': Connection refused",
      'error: Cannot recv data: Connection reset by peer',
      'error: End of file while reading data: Input/output error',
      'error: internal error: client socket is closed',
    ]) {
      assert.equal(isHypervisorOutage(command(stderr)), true, stderr);
    }
  });

  it('takes SSH refused, timed out or cut as an outage', () => {
    assert.equal(isHypervisorOutage({ kind: 'connect', host: 'hv1', command: 'connect' }), true);
  });

  it('does not wait on a command that failed on a hypervisor that answered, nor on keys', () => {
    for (const stderr of [
      "error: failed to get domain 'db'",
      'error: Requested operation is not valid: domain is not running',
      'qemu-img: Could not open /img/db.qcow2: Permission denied',
    ]) {
      assert.equal(isHypervisorOutage(command(stderr)), false, stderr);
    }
    assert.equal(isHypervisorOutage({ kind: 'host-key', host: 'hv1' }), false);
    assert.equal(isHypervisorOutage({ kind: 'auth', host: 'hv1' }), false);
    assert.equal(isHypervisorOutage({ kind: 'stalled', host: 'hv1' }), false);
  });
});
