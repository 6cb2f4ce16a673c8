/** Embedded MQTT broker (aedes) for the demo and for setups without a broker: plain TCP on a local address. */
import { Aedes } from 'aedes';
import { createServer, Server } from 'node:net';
import type { Logger } from '../log';

export interface EmbeddedBroker {
  url: string;
  port: number;
  close(): Promise<void>;
}

export async function startEmbeddedBroker(host: string, port: number, log: Logger): Promise<EmbeddedBroker> {
  const aedes = await Aedes.createBroker();
  const server: Server = createServer(aedes.handle as unknown as (socket: import('node:net').Socket) => void);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new Error(
          `embedded MQTT broker: cannot listen on ${host}:${port} (${err.code ?? err.message}); ` +
            'choose another mqtt.embeddedPort (ETSTPM_MQTT_EMBEDDED_PORT) or use the broker already there with mqtt.url',
        ),
      ),
    );
    server.listen(port, host, () => resolve());
  });
  const addr = server.address();
  const actual = typeof addr === 'object' && addr ? addr.port : port;
  log.info({ host, port: actual }, `embedded MQTT broker (aedes) listening on ${host}:${actual}`);
  return {
    url: `mqtt://${host}:${actual}`,
    port: actual,
    close: () =>
      new Promise<void>((resolve) => {
        aedes.close(() => server.close(() => resolve()));
        // Open client sockets keep server.close() waiting; aedes.close() ends them.
      }),
  };
}
