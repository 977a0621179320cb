import { Client, Connection } from '@temporalio/client';
import type { Config } from '../../config/schema';

export async function connectClient(config: Config): Promise<{ client: Client; close: () => Promise<void> }> {
  const connection = await Connection.connect({ address: config.temporal.address });
  return { client: new Client({ connection, namespace: config.temporal.namespace }), close: () => connection.close() };
}
