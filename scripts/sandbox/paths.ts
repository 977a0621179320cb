import { join, resolve } from 'node:path';

/** The checkout this file was compiled in (dist/scripts/sandbox/ is three levels down). */
export const PROJECT_ROOT = resolve(__dirname, '..', '..', '..');
/** Where bootstrap.sh installs the pinned Temporal binaries. */
export const TEMPORAL_CLI = join(PROJECT_ROOT, '.venv', 'bin', 'temporal');
export const TEMPORAL_TEST_SERVER = join(PROJECT_ROOT, '.venv', 'bin', 'temporal-test-server');
/** The tiny libvirt guest's kernel and initramfs (built by build-guest.sh). */
export const GUEST_DIR = join(PROJECT_ROOT, '.data', 'guest');
/** The demo's state: Temporal's SQLite, the sandbox hosts, the backup store, the outbox. */
export const DEMO_DATA_DIR = join(PROJECT_ROOT, '.data', 'demo');
/** The compiled CLI, as `cluster-backup` (package.json "bin") runs it. */
export const CLI_JS = join(PROJECT_ROOT, 'dist', 'scripts', 'cli.js');
