import { defineQuery } from '@temporalio/workflow';
import type { RestoreProgress } from '../domain/restore';

/** The step a restore is in and how long each step took. `temporal workflow query --type progress`. */
export const restoreProgressQuery = defineQuery<RestoreProgress>('progress');
