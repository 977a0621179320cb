import { Client, Connection } from '@temporalio/client';
import type { Config } from '../../config/schema';
import { temporalConnection } from '../../adapters/temporal/temporal-connection';

export async function connectClient(config: Config): Promise<{ client: Client; close: () => Promise<void> }> {
  const { namespace, ...options } = temporalConnection(config);
  const connection = await Connection.connect(options);
  return { client: new Client({ connection, namespace }), close: () => connection.close() };
}
