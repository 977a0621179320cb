export { dailySupimBackup } from './daily-supim';
export { weeklyVmBackup } from './weekly-vms';
export { backupWatchdog } from './watchdog';
export { vmGuardian } from './guardian';
export { restoreVm } from './restore-vm';
export { restoreDay } from './restore-day';
export { restoreTest } from './restore-test';
export { weeklyHostVms } from './weekly-host';
