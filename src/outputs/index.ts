/**
 * Every output, built from config in one place (docs/daemon.md, "Architecture"). Each lives in its own module
 * and returns null when its config turns it off; FanOutSink calls them in the order listed here, so the PLC is
 * written before the MQTT reject is queued. A new output is one module and one line in `optional` below.
 */
import type { DaemonConfig } from '../config/types';
import type { ConsoleSources } from '../console';
import type { Metrics } from '../health/metrics';
import type { LoadedModel } from '../infer/models';
import type { Logger } from '../log';
import { FanOutSink } from '../pipeline/fan-out';
import type { Output } from '../pipeline/interfaces';
import { consoleOutput } from './console';
import { modbusOutput } from './modbus';
import { mqttOutput, PublisherFactory, StatusPublisher } from './mqtt';
import { sparkplugOutput } from './sparkplug';

export { consoleWanted } from './console';
export { defaultPublisher } from './mqtt';
export type { PublisherFactory, StatusPublisher } from './mqtt';

export interface OutputContext {
  config: DaemonConfig;
  /** The broker actually used (the embedded one's URL when mqtt.url is ""). */
  mqttUrl: string;
  embeddedBroker: boolean;
  /** What describes the node as a whole (console overview, Sparkplug NBIRTH). */
  primaryModel: LoadedModel;
  /** The daemon's live state, read on request (console). */
  daemon: ConsoleSources;
  metrics: Metrics;
  log: Logger;
  publisher: PublisherFactory;
  /** Outputs handed in from outside (DaemonDeps.sinks), called after MQTT. */
  extra: readonly Output[];
}

export interface Outputs {
  /** MQTT: readiness, the command topic, the pipeline's accounting. */
  mqtt: StatusPublisher;
  /** Every output, MQTT included; the pipeline's sink. */
  all: FanOutSink;
}

export function buildOutputs(x: OutputContext): Outputs {
  const c = x.config;
  const mqtt = mqttOutput(x.publisher, { ...c.mqtt, url: x.mqttUrl }, x.embeddedBroker, x.metrics, x.log);
  const optional: (Output | null)[] = [
    consoleOutput(c, x.primaryModel, x.daemon, mqtt.commandClient ?? null, x.log),
    modbusOutput(c, x.metrics.registry, x.log),
    sparkplugOutput(c, x.mqttUrl, x.primaryModel, x.metrics.registry, x.log),
  ];
  const outputs = [...optional.filter((o): o is Output => o !== null), mqtt, ...x.extra];
  return { mqtt, all: new FanOutSink(mqtt, outputs, x.log) };
}
