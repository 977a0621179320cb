import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { BACKUP_SEARCH_ATTRIBUTES } from '../../domain/search-attributes';
import { EXIT, jsonOption, output, type CliCommand } from './command-kit';

const KEYWORD = temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD;

/** `--search-attribute` flags for `temporal server start-dev`: the dev server registers them at start. */
export const DEV_SERVER_SEARCH_ATTRIBUTE_FLAGS = BACKUP_SEARCH_ATTRIBUTES.flatMap((key) => [
  '--search-attribute',
  `${key.name}=Keyword`,
]);

/**
 * Registers the backup search attributes in the client's namespace (once per cluster; idempotent).
 * Equivalent: `temporal operator search-attribute create --name BackupJob --type Keyword` for each.
 */
export async function registerSearchAttributes(client: Client): Promise<{ name: string; change: string }[]> {
  const namespace = client.options.namespace;
  const operator = client.connection.operatorService;
  const { customAttributes = {} } = await operator.listSearchAttributes({ namespace });
  const results = BACKUP_SEARCH_ATTRIBUTES.map(({ name }) => {
    const existing = customAttributes[name];
    if (existing === undefined) return { name, change: 'registered' };
    if (existing === KEYWORD) return { name, change: 'already registered' };
    throw new Error(
      `search attribute ${name} exists with type ${temporal.api.enums.v1.IndexedValueType[existing]}, not Keyword: ` +
        'remove or rename it first (the workflows would not set it)',
    );
  });
  const missing = results.filter((r) => r.change === 'registered').map((r) => r.name);
  if (missing.length > 0) {
    await operator.addSearchAttributes({
      namespace,
      searchAttributes: Object.fromEntries(missing.map((name) => [name, KEYWORD])),
    });
  }
  return results;
}

export const searchAttributesRegisterCommand: CliCommand = {
  name: ['search-attributes', 'register'],
  groupSummary: 'the search attributes that tag runs (BackupJob, BackupPeriod, BackupResult, BackupHypervisor)',
  summary:
    'register BackupJob, BackupPeriod, BackupResult, BackupHypervisor in the namespace (once per cluster; idempotent)',
  define: jsonOption,
  run: (cli, command) =>
    cli.withClient(async (client) => {
      const results = await registerSearchAttributes(client);
      output(command, results, () => results.map((r) => `${r.name}: ${r.change}`));
      return EXIT.ok;
    }),
};
