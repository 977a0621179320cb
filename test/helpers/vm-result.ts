import type { VmResult } from '../../domain/weekly-summary';

/** A VM's result as a cycle that went well returns it; `over` changes what a test is about. */
export function vmResult(vm: string, over: Partial<VmResult> = {}): VmResult {
  return {
    vm,
    status: 'backed-up',
    wasRunning: true,
    runningAtEnd: true,
    images: [],
    stored: [],
    steps: [],
    deleted: [],
    ...over,
  };
}
