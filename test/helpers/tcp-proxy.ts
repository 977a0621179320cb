import { connect, createServer, type Socket } from 'node:net';

export interface TcpProxy {
  port: number;
  /** Bytes sent from the server to the client, per connection, in order of connection. */
  downstreamBytes: number[];
  /** The next connection goes silent (nothing forwarded either way, nothing closed) after this many bytes downstream. */
  stallNextAfter(bytes: number): void;
  /** The next connection gets one byte inverted downstream, at this offset of what the server sends. */
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
    const limit = stallAt;
    const flip = flipAt;
    stallAt = undefined;
    flipAt = undefined;
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
      if (flip !== undefined && flip >= at && flip < at + chunk.length) chunk[flip - at]! ^= 0xff;
      downstreamBytes[index]! += chunk.length;
      if (limit !== undefined && downstreamBytes[index]! >= limit) stalled = true;
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
