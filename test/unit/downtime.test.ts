/** The VM cycle's downtime budget (workflows/vm-cycle/downtime.ts): what is left for a copy while down. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BOOT_RESERVE_SECONDS, Downtime } from '../../workflows/vm-cycle/downtime';

describe('downtime budget', () => {
  it('leaves the budget less the time since the stop and the boot reserve for a copy', () => {
    const downtime = new Downtime(600);
    downtime.stopRequested(Date.now() - 100_000);
    const left = downtime.imagingSeconds();
    assert.ok(left <= 600 - 100 - BOOT_RESERVE_SECONDS && left > 600 - 101 - BOOT_RESERVE_SECONDS, `${left}`);
    assert.equal(downtime.spent(), false);
    assert.ok(downtime.sinceStop() >= 100_000);
  });

  it('is spent once only the boot reserve is left: a VM left off that long is started before its copy', () => {
    const downtime = new Downtime(600);
    downtime.stopRequested(Date.now() - (600 - BOOT_RESERVE_SECONDS) * 1000);
    assert.equal(downtime.spent(), true);
    assert.ok(downtime.imagingSeconds() <= 0);
  });

  it('starts neither off nor stopped: a VM never asked to stop has no downtime to count', () => {
    const downtime = new Downtime(600);
    assert.equal(downtime.off, false);
    assert.ok(downtime.spent(), 'without a stop, no copy may count on the budget (as before: from time zero)');
  });
});
