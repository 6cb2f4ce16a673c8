// A loopback TCP relay between the daemon and the broker, so a test can kill the daemon's connection (as a cable
// pull or a firewall would) while the broker and the daemon keep running.
import { createConnection, createServer, Server, Socket } from 'node:net';

export class TcpProxy {
  port = 0;
  private server: Server | null = null;
  private readonly pairs = new Set<[Socket, Socket]>();

  constructor(private readonly targetPort: number, private readonly targetHost = '127.0.0.1') {}

  async start(): Promise<this> {
    this.server = createServer((client) => {
      const upstream = createConnection({ port: this.targetPort, host: this.targetHost });
      const pair: [Socket, Socket] = [client, upstream];
      this.pairs.add(pair);
      const done = (): void => {
        client.destroy();
        upstream.destroy();
        this.pairs.delete(pair);
      };
      client.on('error', done).on('close', done);
      upstream.on('error', done).on('close', done);
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((res) => this.server!.listen(0, '127.0.0.1', () => res()));
    const a = this.server.address();
    this.port = typeof a === 'object' && a ? a.port : 0;
    return this;
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  get connections(): number {
    return this.pairs.size;
  }

  /** Drops every relayed connection at once (no MQTT DISCONNECT: the broker publishes the will). */
  cut(): void {
    for (const [a, b] of this.pairs) {
      a.destroy();
      b.destroy();
    }
    this.pairs.clear();
  }

  async stop(): Promise<void> {
    this.cut();
    await new Promise<void>((res) => (this.server ? this.server.close(() => res()) : res()));
  }
}
