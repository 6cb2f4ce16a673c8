// An MQTT subscriber (mqtt.js, protocol 5) that records every message per topic, with arrival time, retain flag and
// MQTT 5 properties, so tests can assert on what the daemon really put on the wire.
import { readFileSync } from 'node:fs';
import { connect, IClientOptions, IPublishPacket, MqttClient } from 'mqtt';
import { waitFor } from './wait';

export interface Received {
  topic: string;
  payload: Buffer;
  retain: boolean;
  qos: number;
  properties: IPublishPacket['properties'];
  t: number; // arrival, epoch ms
}

export interface CollectorOptions {
  url: string;
  topics: string[];
  username?: string;
  password?: string;
  ca?: string;
  cert?: string;
  key?: string;
}

export class MqttCollector {
  readonly messages: Received[] = [];
  client!: MqttClient;

  constructor(private readonly opts: CollectorOptions) {}

  async start(timeoutMs = 10000): Promise<this> {
    const o = this.opts;
    const copts: IClientOptions = {
      protocolVersion: 5,
      reconnectPeriod: 200,
      connectTimeout: 5000,
      clientId: `etstpm-it-${process.pid}-${Math.random().toString(16).slice(2, 8)}`,
    };
    if (o.username) copts.username = o.username;
    if (o.password) copts.password = o.password;
    if (o.ca) copts.ca = readFileSync(o.ca);
    if (o.cert) copts.cert = readFileSync(o.cert);
    if (o.key) copts.key = readFileSync(o.key);
    this.client = connect(o.url, copts);
    this.client.on('message', (topic, payload, packet) => {
      this.messages.push({ topic, payload, retain: packet.retain, qos: packet.qos, properties: packet.properties, t: Date.now() });
    });
    // (Re)subscribe on every connect: the broker under test may be restarted without persistence.
    this.client.on('connect', () => {
      this.client.subscribe(o.topics, { qos: 1 });
    });
    await waitFor(`MQTT collector connected to ${o.url}`, () => this.client.connected, timeoutMs);
    await new Promise<void>((res, rej) => this.client.subscribe(o.topics, { qos: 1 }, (err) => (err ? rej(err) : res())));
    return this;
  }

  stop(): Promise<void> {
    return new Promise((res) => (this.client ? this.client.end(true, {}, () => res()) : res()));
  }

  on(topic: string, since = 0): Received[] {
    return this.messages.filter((m) => m.topic === topic && m.t >= since);
  }

  json<T = Record<string, unknown>>(topic: string, since = 0): T[] {
    return this.on(topic, since).map((m) => JSON.parse(m.payload.toString('utf8')) as T);
  }

  /** Waits for a message on `topic` (arrived at or after `since`) that satisfies `pred`; returns it. */
  waitFor(topic: string, pred: (m: Received) => boolean, timeoutMs: number, since = 0, what = ''): Promise<Received> {
    return waitFor(`MQTT ${topic}${what ? ` ${what}` : ''}`, () => this.on(topic, since).find(pred), timeoutMs);
  }

  waitJson<T = Record<string, unknown>>(topic: string, pred: (v: T) => boolean, timeoutMs: number, since = 0,
    what = ''): Promise<T> {
    return waitFor(`MQTT ${topic}${what ? ` ${what}` : ''}`,
      () => this.json<T>(topic, since).find(pred), timeoutMs);
  }
}

/** Reads the retained message of one topic with a fresh connection (what a newly started dashboard would see). */
export async function readRetained(opts: Omit<CollectorOptions, 'topics'>, topic: string, timeoutMs = 3000): Promise<Received | null> {
  const c = await new MqttCollector({ ...opts, topics: [topic] }).start();
  try {
    return await waitFor(`retained ${topic}`, () => c.on(topic).find((m) => m.retain), timeoutMs).catch(() => null);
  } finally {
    await c.stop();
  }
}
