import { connect, createServer, type Socket } from 'node:net';

export interface TcpProxy {
  port: number;
  /** Bytes sent from the server to the client, per connection, in order of connection. */
  downstreamBytes: number[];
  /**
   * The next connection to send this many bytes downstream goes silent (nothing forwarded either way, nothing
   * closed). The first to get that far, not the next one opened: a bulk stream over a connection of its own
   * (transfer.bulkClient openssh) opens after its control connection and carries all the data.
   */
  stallNextAfter(bytes: number): void;
  /** The next connection to reach this offset of what the server sends gets that byte inverted. */
  flipNextAt(offset: number): void;
  stop(): Promise<void>;
}

/** A loopback TCP proxy in front of a test server that can count what passes, play a dead link or corrupt a byte. */
export async function startTcpProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  const downstreamBytes: number[] = [];
  let stallAt: number | undefined;
  let flipAt: number | undefined;

  const server = createServer((client) => {
    const index = downstreamBytes.push(0) - 1;
    let stalled = false;
    const upstream = connect({ host: targetHost, port: targetPort });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => {
        sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    client.on('data', (chunk) => {
      if (!stalled) upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (stalled) return;
      const at = downstreamBytes[index]!;
      if (flipAt !== undefined && flipAt >= at && flipAt < at + chunk.length) {
        chunk[flipAt - at]! ^= 0xff;
        flipAt = undefined;
      }
      downstreamBytes[index]! += chunk.length;
      if (stallAt !== undefined && downstreamBytes[index]! >= stallAt) {
        stalled = true;
        stallAt = undefined;
      }
      client.write(chunk);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (typeof address !== 'object' || !address) throw new Error('proxy has no port');
  return {
    port: address.port,
    downstreamBytes,
    stallNextAfter: (bytes) => {
      stallAt = bytes;
    },
    flipNextAt: (offset) => {
      flipAt = offset;
    },
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
