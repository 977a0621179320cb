import type { Client } from '@temporalio/client';
import { log } from '@temporalio/activity';
import { temporal } from '@temporalio/proto';
import type { Config } from '../config/schema';
import { BACKUP_SEARCH_ATTRIBUTES } from '../domain/search-attributes';
import { missingDependency } from './failures';

export interface VisibilityDeps {
  config: Config;
  temporalClient?: () => Promise<Client>;
}

const RECHECK_MS = 60_000;

export function createVisibilityActivities({ temporalClient }: VisibilityDeps) {
  let known: { names: string[]; at: number } | undefined;

  /**
   * Which of the backup search attributes the namespace has registered (as Keyword). Workflows set only
   * those: upserting an unknown one would fail the workflow task on every retry. Never fails the run:
   * a cluster that does not let the worker ask just gets runs without the attributes.
   */
  async function registeredSearchAttributes(): Promise<string[]> {
    if (known && Date.now() - known.at < RECHECK_MS) return known.names;
    let names: string[] = [];
    try {
      if (!temporalClient) throw missingDependency('no Temporal client');
      const client = await temporalClient();
      const { customAttributes } = await client.connection.operatorService.listSearchAttributes({
        namespace: client.options.namespace,
      });
      names = BACKUP_SEARCH_ATTRIBUTES.map((key) => key.name).filter(
        (name) => customAttributes?.[name] === temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
      );
    } catch (err) {
      log.warn('could not list the namespace search attributes; runs are not tagged', { error: String(err) });
    }
    // Only a complete answer is kept: a namespace is usually registered right before the next run.
    known = names.length === BACKUP_SEARCH_ATTRIBUTES.length ? { names, at: Date.now() } : undefined;
    return names;
  }

  return { registeredSearchAttributes };
}
