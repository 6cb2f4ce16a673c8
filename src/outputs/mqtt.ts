/**
 * The MQTT JSON topics (docs/mqtt.md): the primary output. The pipeline's accounting (unsent counts, frame-to-publish
 * latency) is about it, and the daemon is READY once it is connected. The Publisher (src/publish/mqtt.ts) is an
 * Output as it is; tests hand in their own through DaemonDeps.publisher.
 */
import type { CommandClient } from '../console/mqtt-commands';
import type { MqttOptions } from '../config/types';
import type { Metrics } from '../health/metrics';
import type { Logger } from '../log';
import type { CameraStatusSink, ResultSink } from '../pipeline/interfaces';
import type { CameraStatusMessage } from '../pipeline/records';
import { Publisher } from '../publish/mqtt';

/** The daemon's MQTT side: the primary output, plus readiness and an orderly close. */
export interface StatusPublisher extends ResultSink, CameraStatusSink {
  readonly name?: string;
  waitConnected(): Promise<void>;
  onConnection(listener: (connected: boolean) => void): void;
  /** The MQTT client for inbound commands (the console's command topic); absent where an output cannot subscribe. */
  readonly commandClient?: CommandClient;
  /** Publishes final statuses and "offline", then disconnects; bounded by timeoutMs. */
  close(finalStatuses: CameraStatusMessage[], timeoutMs: number): Promise<void>;
}

export type PublisherFactory = (opts: MqttOptions, log: Logger) => StatusPublisher;

export const defaultPublisher: PublisherFactory = (opts, log) => new Publisher(opts, log);

/** The publisher on the broker actually used; aedes (embedded) speaks MQTT 3.1.1 only: no message properties. */
export function mqttOutput(make: PublisherFactory, opts: MqttOptions, embedded: boolean, metrics: Metrics, log: Logger): StatusPublisher {
  const p = make({ ...opts, protocolVersion: embedded ? 4 : 5 }, log);
  p.onConnection((up) => metrics.mqttConnected.set(up ? 1 : 0));
  return p;
}
