import { writeFileSync } from 'node:fs';
import { bundleWorkflowCode } from '@temporalio/worker';
import { WORKFLOW_BUNDLE } from '../worker/create-worker';

/** Bundles workflows once at build time, so every worker start (and restart after a crash) skips webpack. */
async function main(): Promise<void> {
  const { code } = await bundleWorkflowCode({ workflowsPath: require.resolve('../workflows'), logger: quietLogger });
  writeFileSync(WORKFLOW_BUNDLE, code);
}

const noop = () => undefined;
const quietLogger = { log: noop, trace: noop, debug: noop, info: noop, warn: console.warn, error: console.error };

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
