import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

/**
 * Custom search attributes that make runs filterable in the Web UI and `temporal workflow list --query`.
 * A namespace must have them registered (the dev server does it at start; a cluster runs
 * `cluster-backup search-attributes register` once). Until then the workflows simply do not set them.
 */
export const BACKUP_JOB = defineSearchAttributeKey('BackupJob', SearchAttributeType.KEYWORD);
/** The julian day a daily run ends on (2026-331) or a weekly run's ISO week (2026-W48). */
export const BACKUP_PERIOD = defineSearchAttributeKey('BackupPeriod', SearchAttributeType.KEYWORD);
export const BACKUP_RESULT = defineSearchAttributeKey('BackupResult', SearchAttributeType.KEYWORD);

/** On a weekly run's child run for one hypervisor (`vms-<week>-<hypervisor>-<stamp>`): the hypervisor's name. */
export const BACKUP_HYPERVISOR = defineSearchAttributeKey('BackupHypervisor', SearchAttributeType.KEYWORD);

export const BACKUP_SEARCH_ATTRIBUTES = [BACKUP_JOB, BACKUP_PERIOD, BACKUP_RESULT, BACKUP_HYPERVISOR] as const;

/** incomplete: the run finished but not everything was backed up (the report says what). */
export type BackupResult = 'running' | 'ok' | 'incomplete' | 'failed' | 'cancelled';
