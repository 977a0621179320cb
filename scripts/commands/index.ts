import { backfillCommand } from './backfill';
import type { CliCommand } from './command-kit';
import { configCheckCommand } from './config-check';
import { offsiteInitCommand } from './offsite';
import { runDailyCommand } from './run-daily';
import { restoreDayCommand, restoreTestCommand, restoreVmCommand } from './restore';
import { restoreFileCommand, restoreLsCommand, restoreMountCommand, restoreUmountCommand } from './restore-file';
import { runVmsCommand } from './run-vms';
import { schedulesApplyCommand } from './schedules-apply';
import { schedulesListCommand } from './schedules-list';
import { schedulesPauseCommand, schedulesUnpauseCommand } from './schedules-pause';
import { searchAttributesRegisterCommand } from './search-attributes';
import { statusCommand } from './status';
import { storeInitCommand } from './store-init';
import { storeRetentionCommand } from './store-retention';
import { storeVerifyCommand } from './store-verify';
import { triggerCommand } from './trigger';
import { workerCommand } from './worker';

/** Every command of `cluster-backup`, in the order `--help` lists them: a new command is one more line. */
export const COMMANDS: readonly CliCommand[] = [
  workerCommand,
  runDailyCommand,
  runVmsCommand,
  schedulesApplyCommand,
  schedulesListCommand,
  schedulesPauseCommand,
  schedulesUnpauseCommand,
  triggerCommand,
  backfillCommand,
  statusCommand,
  searchAttributesRegisterCommand,
  storeInitCommand,
  restoreVmCommand,
  restoreDayCommand,
  restoreTestCommand,
  restoreFileCommand,
  restoreLsCommand,
  restoreMountCommand,
  restoreUmountCommand,
  storeVerifyCommand,
  storeRetentionCommand,
  offsiteInitCommand,
  configCheckCommand,
];
