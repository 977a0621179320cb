/**
 * The house's structure, checked by `npm run lint`: no circles (between files, nor between folders), and
 * data flows down the layers, never back up:
 *   scripts/, worker/  ->  workflows/  ->  activities/  ->  adapters/  ->  domain/, config/
 * Workflows are deterministic orchestration: they may import domain/, and only the *types* of config/ and
 * activities/ (no adapters, no Node built-ins).
 */
const LAYERS = {
  entry: '^(scripts|worker)/',
  workflows: '^workflows/',
  activities: '^activities/',
  adapters: '^adapters/',
  bottom: '^(domain|config)/',
};

/** A rule forbidding the files of `from` to import those of `to`. */
const upward = (name, from, to, comment) => ({
  name,
  comment,
  severity: 'error',
  from: { path: from },
  to: { path: to },
});

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'A circle of files: none of them can be read (or changed) without the others.',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'no-circular-folders',
      comment: 'A circle of folders: the layers no longer stack.',
      severity: 'error',
      scope: 'folder',
      from: {},
      to: { circular: true },
    },
    upward(
      'bottom-imports-nothing-above',
      LAYERS.bottom,
      '^(adapters|activities|workflows|worker|scripts)/',
      'domain/ and config/ are the bottom layer: pure logic and the config contract.',
    ),
    upward(
      'adapters-below-activities',
      LAYERS.adapters,
      '^(activities|workflows|worker|scripts)/',
      'An adapter talks to one outside system; it knows nothing of activities or workflows.',
    ),
    upward(
      'activities-below-workflows',
      LAYERS.activities,
      '^(workflows|worker|scripts)/',
      'Activities are built from adapters and run under workflows; they import neither.',
    ),
    upward(
      'workflows-below-entry',
      LAYERS.workflows,
      LAYERS.entry,
      'Workflows are bundled on their own: nothing of the worker or the scripts.',
    ),
    {
      name: 'adapters-no-activity-runtime',
      comment:
        'An adapter is handed what it needs (progress to resume from, a cancel signal); reading the activity ' +
        'context itself ties it to the layer above. EXCEPTION, not yet removed: adapters/transfer/day-copy.ts ' +
        'reads the heartbeat details of a crashed attempt with Context.current(); removing it means ' +
        'activities/supim.ts passing them in, and activities/ are being rewritten in another part of issue 20.',
      severity: 'error',
      from: { path: LAYERS.adapters, pathNot: '^adapters/transfer/day-copy[.]ts$' },
      to: { path: '@temporalio/activity' },
    },
    upward(
      'nothing-imports-tests',
      '^(activities|adapters|config|domain|scripts|workflows|worker)/',
      '^test/',
      'The product does not depend on its tests.',
    ),
    upward(
      'workflows-no-adapters',
      LAYERS.workflows,
      '^adapters/',
      'Workflows are deterministic: no adapter (I/O) in their bundle.',
    ),
    {
      name: 'workflows-only-types-of-activities-and-config',
      comment: 'Workflows may name activity and config types; importing their code would bundle I/O.',
      severity: 'error',
      from: { path: LAYERS.workflows },
      to: { path: '^(activities|config)/', dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'workflows-no-io-packages',
      comment: 'Workflows never reach the outside world themselves: no SSH, mail, Temporal client or worker.',
      severity: 'error',
      from: { path: LAYERS.workflows },
      to: { path: 'node_modules/(ssh2|nodemailer|@temporalio/(activity|client|worker|testing))/' },
    },
    {
      name: 'workflows-no-node-builtins',
      comment: 'The workflow sandbox has no Node built-ins.',
      severity: 'error',
      from: { path: LAYERS.workflows },
      to: { dependencyTypes: ['core'] },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^dist/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    moduleSystems: ['cjs', 'es6'],
  },
};
