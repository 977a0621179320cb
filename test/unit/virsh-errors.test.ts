import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isRetryable } from '../../adapters/ssh/remote-command-error';

/** What virsh and qemu-img really print (captured from Debian 12's libvirt-clients 9.0 and qemu-utils 7.2). */
const TRANSIENT: [what: string, stderr: string][] = [
  [
    'libvirtd restarting: its socket is gone',
    "error: failed to connect to the hypervisor\nerror: Failed to connect socket to '/var/run/libvirt/libvirt-sock': No such file or directory",
  ],
  [
    'libvirtd not accepting yet',
    "error: failed to connect to the hypervisor\nerror: Failed to connect socket to '/var/run/libvirt/libvirt-sock': Connection refused",
  ],
  ['libvirtd killed during a call', 'error: Cannot recv data: Connection reset by peer'],
  ['libvirtd closing the connection', 'error: End of file while reading data: Input/output error'],
  [
    'a domain busy with another job',
    'error: Timed out during operation: cannot acquire state change lock (held by monitor=remoteDispatchDomainCreate)',
  ],
  [
    'a disk still locked by a copy',
    'error: internal error: qemu unexpectedly closed the monitor: Failed to get "write" lock',
  ],
];

const PERMANENT: [what: string, stderr: string][] = [
  [
    'a socket the user may not use',
    "error: failed to connect to the hypervisor\nerror: Failed to connect socket to '/var/run/libvirt/libvirt-sock': Permission denied",
  ],
  [
    'a disk file that is gone',
    "qemu-img: Could not open '/vm/db.qcow2': Could not open '/vm/db.qcow2': No such file or directory",
  ],
  ['an image area that is a file', "mkdir: cannot create directory '/img/db': Not a directory"],
];

describe('virsh and qemu-img failures: transient is retried, permanent is not', () => {
  for (const [what, stderr] of TRANSIENT) {
    it(`retries: ${what}`, () => assert.equal(isRetryable({ kind: 'command', host: 'hv', exitCode: 1, stderr }), true));
  }
  for (const [what, stderr] of PERMANENT) {
    it(`does not retry: ${what}`, () =>
      assert.equal(isRetryable({ kind: 'command', host: 'hv', exitCode: 1, stderr }), false));
  }
});
