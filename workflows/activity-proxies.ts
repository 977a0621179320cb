import { proxyActivities, type ActivityOptions } from '@temporalio/workflow';
import type { RemoteActivities, StoreActivities } from '../activities';

/**
 * The only way workflows reach activities: a store activity exists only on the store task queue's proxy, so
 * calling one where no worker takes it does not compile.
 */
export function remoteActivities(options: ActivityOptions) {
  return proxyActivities<RemoteActivities>(options);
}

export function storeActivities(storeTaskQueue: string, options: ActivityOptions) {
  return proxyActivities<StoreActivities>({ ...options, taskQueue: storeTaskQueue });
}
