export { dailySupimBackup } from './daily-supim';
export { weeklyVmBackup } from './weekly-vms';
export { backupWatchdog } from './watchdog';
export { vmGuardian } from './guardian';
