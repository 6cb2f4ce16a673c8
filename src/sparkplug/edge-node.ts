/**
 * Sparkplug B 3.0 edge node: the daemon is the edge node, each camera a device (docs/sparkplug.md).
 *
 * Session rules it keeps (Sparkplug 3.0 chapter 6/7):
 * - Every MQTT CONNECT carries an NDEATH will with bdSeq; bdSeq goes up by one (mod 256) for each CONNECT, and the
 *   NBIRTH of that session carries the same bdSeq, so a host can pair a broker-sent NDEATH with its NBIRTH.
 * - NCMD (and the primary host's STATE) are subscribed before NBIRTH; NBIRTH has seq 0, every later message of the
 *   node (DBIRTH, NDATA, DDATA, DDEATH) the next seq mod 256. NDEATH has no seq.
 * - With a primary host application configured, nothing is published until its STATE says online; when it goes
 *   offline the node publishes NDEATH, disconnects and connects again (new bdSeq), then waits for online again.
 * - `Node Control/Rebirth` = true in an NCMD re-publishes NBIRTH (seq 0, same bdSeq) and every DBIRTH.
 * Nothing is queued while offline: a reconnect re-births with the latest values.
 */
import mqtt, { IClientOptions, MqttClient } from 'mqtt';
import { Counter, Gauge, Registry } from 'prom-client';
import type { Logger } from '../log';
import { credentialOptions, MqttConnectionOptions } from '../publish/mqtt';
import { decodePayload, encodePayload, Metric, MetricType, MetricValue } from './payload';
import { sparkplugTopics, SparkplugTopics } from './topics';

export interface SparkplugMqttOptions extends MqttConnectionOptions {
  /** Where the URL is printed in logs (credentials removed by the caller). */
  redactedUrl: string;
}

export interface SparkplugOptions {
  groupId: string;
  edgeNodeId: string;
  /** '' = no primary host application: publish as soon as connected. */
  primaryHostId: string;
  /** 0 = one DDATA per result; else at most one DDATA per camera per period, with the latest values. */
  dataPeriodMs: number;
  reconnectPeriodMs?: number;
  mqtt: SparkplugMqttOptions;
}

/** Node-level values (NBIRTH / NDATA). */
export interface NodeInfo {
  modelName: string;
  modelVersion: string;
  modelMethod: string;
  provider: string;
  /** Decision threshold in score units (the verdict is NG at and above it). */
  threshold: number;
  rawThreshold: number;
  status: string;
}

/** One scored frame of a camera. */
export interface DeviceResult {
  frameSeq: number;
  capturedAt: number;
  score: number;
  verdict: 'ok' | 'ng';
  ngCount: number;
  latencyMs: number;
}

export interface DeviceStatus {
  state: string;
  fps: number;
  /** The camera's own model (cameras may have different ones; the node's Model/* metrics describe the primary). */
  modelName: string;
  modelVersion: string;
  /** The raw threshold the camera is judged at and its source (model, config, runtime); null without a model. */
  rawThreshold: number | null;
  thresholdSource: string | null;
  /** Share of recent OK frames above the calibration quantile (docs/daemon.md, "Drift"); null while none. */
  driftShare: number | null;
}

interface MetricDef {
  name: string;
  type: MetricType;
}

/** Node metrics with aliases, in alias order (bdSeq and the rebirth control keep their names only, as hosts use them by name). */
const NODE_METRICS: readonly (MetricDef & { key: keyof NodeInfo })[] = [
  { name: 'Model/Name', type: 'String', key: 'modelName' },
  { name: 'Model/Version', type: 'String', key: 'modelVersion' },
  { name: 'Model/Method', type: 'String', key: 'modelMethod' },
  { name: 'Model/Threshold', type: 'Double', key: 'threshold' },
  { name: 'Model/Raw Threshold', type: 'Double', key: 'rawThreshold' },
  { name: 'Inference/Provider', type: 'String', key: 'provider' },
  { name: 'Status', type: 'String', key: 'status' },
];

export const DEVICE_METRICS = {
  score: { name: 'Inspection/Score', type: 'Double' },
  verdict: { name: 'Inspection/Verdict', type: 'String' },
  ngCount: { name: 'Inspection/NG Count', type: 'UInt64' },
  frameSeq: { name: 'Inspection/Frame Seq', type: 'UInt64' },
  latencyMs: { name: 'Inspection/Latency ms', type: 'Double' },
  state: { name: 'Camera/State', type: 'String' },
  fps: { name: 'Camera/FPS', type: 'Double' },
  modelName: { name: 'Model/Name', type: 'String' },
  modelVersion: { name: 'Model/Version', type: 'String' },
  // Appended last: the aliases of the metrics above stay what they were.
  rawThreshold: { name: 'Inspection/Raw Threshold', type: 'Double' },
  thresholdSource: { name: 'Inspection/Threshold Source', type: 'String' },
  driftShare: { name: 'Inspection/Drift Share', type: 'Double' },
} as const satisfies Record<string, MetricDef>;
type DeviceKey = keyof typeof DEVICE_METRICS;
const DEVICE_KEYS = Object.keys(DEVICE_METRICS) as DeviceKey[];

/** Device aliases: DEVICE_ALIAS_BASE + index of the camera (first seen order) * DEVICE_ALIAS_STRIDE + metric index. */
const DEVICE_ALIAS_BASE = 1000;
const DEVICE_ALIAS_STRIDE = 100;
export const REBIRTH_METRIC = 'Node Control/Rebirth';

interface Device {
  id: string;
  aliasBase: number;
  values: Record<DeviceKey, MetricValue>;
  /** Last published value per metric: DDATA carries only what changed since (report by exception). */
  sent: Partial<Record<DeviceKey, MetricValue>>;
  born: boolean;
  timestamps: Partial<Record<DeviceKey, number>>;
}

export interface SparkplugHealth {
  connected: boolean;
  born: boolean;
  bdSeq: number;
  primaryHost: null | { id: string; online: boolean };
}

export class SparkplugEdgeNode {
  readonly client: MqttClient;
  readonly topics: SparkplugTopics;
  /** bdSeq of the current (or next) MQTT session; the will of that CONNECT carries it. */
  bdSeq = 0;
  private seq = 0;
  private born = false;
  private hostOnline = false;
  private hostStateTs = -Infinity;
  private closing = false;
  private cycling = false;
  private node: NodeInfo;
  private nodeSent: Partial<NodeInfo> = {};
  private readonly devices = new Map<string, Device>();
  private readonly aliasBases = new Map<string, number>();
  private flushTimer: NodeJS.Timeout | null = null;
  private lastError: string | undefined;
  private readonly mConnected: Gauge;
  private readonly mMessages: Counter;

  constructor(
    private readonly opts: SparkplugOptions,
    node: NodeInfo,
    private readonly log: Logger,
    registry?: Registry,
  ) {
    this.node = { ...node };
    this.topics = sparkplugTopics(opts.groupId, opts.edgeNodeId);
    const registers = registry ? [registry] : [];
    this.mConnected = new Gauge({ name: 'etstpm_sparkplug_connected', help: '1 while the Sparkplug edge node is connected and born', registers });
    this.mMessages = new Counter({ name: 'etstpm_sparkplug_messages_total', help: 'Sparkplug messages published, by type', labelNames: ['type'], registers });
    const o = opts.mqtt;
    const clientOpts: IClientOptions = {
      // Sparkplug 3.0 on MQTT 3.1.1: clean session; the broker sends the will (NDEATH) when the link dies.
      protocolVersion: 4,
      clean: true,
      clientId: o.clientId,
      keepalive: 15,
      reconnectPeriod: opts.reconnectPeriodMs ?? 1000,
      reconnectOnConnackError: true,
      connectTimeout: o.connectTimeoutMs,
      queueQoSZero: false,
      will: this.will(),
      rejectUnauthorized: o.rejectUnauthorized,
    };
    Object.assign(clientOpts, credentialOptions(o));
    this.client = mqtt.connect(o.url, clientOpts);
    // mqtt.js builds each CONNECT from client.options after emitting 'reconnect': the next session's bdSeq goes there.
    this.client.on('reconnect', () => {
      this.bdSeq = (this.bdSeq + 1) % 256;
      this.client.options.will = this.will();
    });
    this.client.on('connect', () => void this.onConnect());
    this.client.on('close', () => {
      if (this.born) this.log.warn({ broker: o.redactedUrl }, 'Sparkplug: MQTT connection lost (the broker publishes NDEATH)');
      this.setBorn(false);
    });
    this.client.on('error', (err: Error) => {
      if (err.message !== this.lastError) this.log.warn({ broker: o.redactedUrl, err: err.message }, 'Sparkplug: MQTT error');
      this.lastError = err.message;
    });
    this.client.on('message', (topic, payload) => this.onMessage(topic, payload));
    if (opts.dataPeriodMs > 0) this.flushTimer = setInterval(() => this.flushAll(), opts.dataPeriodMs);
  }

  health(): SparkplugHealth {
    return {
      connected: this.client.connected,
      born: this.born,
      bdSeq: this.bdSeq,
      primaryHost: this.opts.primaryHostId ? { id: this.opts.primaryHostId, online: this.hostOnline } : null,
    };
  }

  /** Node values changed (status, provider ...): NDATA with the changed ones. */
  setNode(patch: Partial<NodeInfo>): void {
    this.node = { ...this.node, ...patch };
    if (!this.born) return;
    const metrics: Metric[] = [];
    const now = Date.now();
    NODE_METRICS.forEach((d, i) => {
      if (this.node[d.key] !== this.nodeSent[d.key]) metrics.push({ alias: i, type: d.type, value: this.node[d.key], timestamp: now });
    });
    if (metrics.length === 0) return;
    this.nodeSent = { ...this.node };
    this.send('NDATA', this.topics.ndata, { timestamp: now, seq: this.nextSeq(), metrics });
  }

  /** A camera joined: DBIRTH now if the node is born (else with the next NBIRTH). */
  addDevice(id: string, status: DeviceStatus): void {
    let aliasBase = this.aliasBases.get(id);
    if (aliasBase === undefined) {
      aliasBase = DEVICE_ALIAS_BASE + this.aliasBases.size * DEVICE_ALIAS_STRIDE;
      this.aliasBases.set(id, aliasBase);
    }
    const dev: Device = {
      id,
      aliasBase,
      values: { score: null, verdict: null, ngCount: 0, frameSeq: null, latencyMs: null, state: status.state, fps: status.fps, modelName: status.modelName, modelVersion: status.modelVersion,
        rawThreshold: status.rawThreshold, thresholdSource: status.thresholdSource, driftShare: status.driftShare },
      sent: {},
      born: false,
      timestamps: {},
    };
    this.devices.set(id, dev);
    if (this.born) this.deviceBirth(dev);
  }

  /** A camera left (SIGHUP): DDEATH. */
  removeDevice(id: string): void {
    const dev = this.devices.get(id);
    if (!dev) return;
    this.devices.delete(id);
    if (this.born && dev.born && this.client.connected) {
      this.send('DDEATH', this.topics.ddeath(id), { timestamp: Date.now(), seq: this.nextSeq(), metrics: [] });
    }
  }

  result(id: string, r: DeviceResult): void {
    const dev = this.devices.get(id);
    if (!dev) return;
    this.update(dev, { score: r.score, verdict: r.verdict, ngCount: r.ngCount, frameSeq: r.frameSeq, latencyMs: r.latencyMs }, r.capturedAt);
  }

  status(id: string, s: DeviceStatus): void {
    const dev = this.devices.get(id);
    if (!dev) return;
    this.update(dev, { state: s.state, fps: s.fps, modelName: s.modelName, modelVersion: s.modelVersion, rawThreshold: s.rawThreshold, thresholdSource: s.thresholdSource, driftShare: s.driftShare }, Date.now());
  }

  private update(dev: Device, patch: Partial<Record<DeviceKey, MetricValue>>, ts: number): void {
    for (const [k, v] of Object.entries(patch) as [DeviceKey, MetricValue][]) {
      dev.values[k] = v;
      dev.timestamps[k] = ts;
    }
    if (this.opts.dataPeriodMs === 0) this.flush(dev);
  }

  private flushAll(): void {
    for (const dev of this.devices.values()) this.flush(dev);
  }

  private flush(dev: Device): void {
    if (!this.born || !dev.born) return;
    const now = Date.now();
    const metrics: Metric[] = [];
    DEVICE_KEYS.forEach((k, i) => {
      const v = dev.values[k];
      if (v === dev.sent[k]) return;
      metrics.push({ alias: dev.aliasBase + i, type: DEVICE_METRICS[k].type, value: v, timestamp: dev.timestamps[k] ?? now });
      dev.sent[k] = v;
    });
    if (metrics.length === 0) return;
    this.send('DDATA', this.topics.ddata(dev.id), { timestamp: now, seq: this.nextSeq(), metrics });
  }

  private will(): NonNullable<IClientOptions['will']> {
    const payload = encodePayload({ timestamp: Date.now(), metrics: [{ name: 'bdSeq', type: 'UInt64', value: this.bdSeq }] });
    return { topic: this.topics.ndeath, payload, qos: 1, retain: false };
  }

  private nextSeq(): number {
    const s = this.seq;
    this.seq = (this.seq + 1) % 256;
    return s;
  }

  private setBorn(born: boolean): void {
    this.born = born;
    if (!born) for (const d of this.devices.values()) d.born = false;
    this.mConnected.set(born ? 1 : 0);
  }

  private async onConnect(): Promise<void> {
    this.lastError = undefined;
    this.log.info({ broker: this.opts.mqtt.redactedUrl, bdSeq: this.bdSeq, group: this.opts.groupId, node: this.opts.edgeNodeId }, 'Sparkplug: connected');
    this.hostOnline = false;
    try {
      const subs = [this.topics.ncmd];
      if (this.opts.primaryHostId) subs.push(this.topics.state(this.opts.primaryHostId));
      // Commands (and the host's STATE) are subscribed before NBIRTH, so no rebirth request can slip between.
      await this.client.subscribeAsync(subs, { qos: 1 });
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'Sparkplug: subscribe failed; waiting for the next connection');
      return;
    }
    if (!this.opts.primaryHostId) this.birth();
    else this.log.info({ host: this.opts.primaryHostId }, 'Sparkplug: waiting for the primary host application to be online');
  }

  /** NBIRTH (seq 0, this session's bdSeq) followed by every DBIRTH. */
  private birth(): void {
    if (!this.client.connected) return;
    const now = Date.now();
    this.seq = 0;
    const metrics: Metric[] = [
      { name: 'bdSeq', type: 'UInt64', value: this.bdSeq, timestamp: now },
      { name: REBIRTH_METRIC, type: 'Boolean', value: false, timestamp: now },
      ...NODE_METRICS.map((d, i): Metric => ({ name: d.name, alias: i, type: d.type, value: this.node[d.key], timestamp: now })),
    ];
    this.nodeSent = { ...this.node };
    this.send('NBIRTH', this.topics.nbirth, { timestamp: now, seq: this.nextSeq(), metrics });
    this.setBorn(true);
    for (const dev of this.devices.values()) this.deviceBirth(dev);
    this.log.info({ bdSeq: this.bdSeq, devices: [...this.devices.keys()] }, 'Sparkplug: NBIRTH and DBIRTHs published');
  }

  private deviceBirth(dev: Device): void {
    const now = Date.now();
    const metrics = DEVICE_KEYS.map((k, i): Metric => ({
      name: DEVICE_METRICS[k].name,
      alias: dev.aliasBase + i,
      type: DEVICE_METRICS[k].type,
      value: dev.values[k],
      timestamp: dev.timestamps[k] ?? now,
    }));
    dev.sent = { ...dev.values };
    dev.born = true;
    this.send('DBIRTH', this.topics.dbirth(dev.id), { timestamp: now, seq: this.nextSeq(), metrics });
  }

  private send(type: string, topic: string, p: Parameters<typeof encodePayload>[0]): void {
    if (!this.client.connected) return;
    this.client.publish(topic, encodePayload(p), { qos: 0, retain: false });
    this.mMessages.inc({ type });
  }

  private onMessage(topic: string, payload: Buffer): void {
    if (topic === this.topics.ncmd) {
      let rebirth: boolean;
      try {
        rebirth = decodePayload(payload).metrics.some((m) => m.name === REBIRTH_METRIC && m.value === true);
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'Sparkplug: undecodable NCMD ignored');
        return;
      }
      if (!rebirth) return;
      if (this.opts.primaryHostId && !this.hostOnline) return;
      this.log.info('Sparkplug: rebirth requested (NCMD Node Control/Rebirth)');
      this.birth();
    } else if (this.opts.primaryHostId && topic === this.topics.state(this.opts.primaryHostId)) {
      this.onHostState(payload);
    }
  }

  /** Sparkplug 3.0 STATE: JSON {online, timestamp}; an older timestamp than the last one seen is stale and ignored. */
  private onHostState(payload: Buffer): void {
    let s: { online?: unknown; timestamp?: unknown };
    try {
      s = JSON.parse(payload.toString('utf8')) as typeof s;
    } catch {
      this.log.warn({ host: this.opts.primaryHostId }, 'Sparkplug: STATE payload is not JSON {online, timestamp}; ignored');
      return;
    }
    if (typeof s.online !== 'boolean' || typeof s.timestamp !== 'number') {
      this.log.warn({ host: this.opts.primaryHostId }, 'Sparkplug: STATE payload lacks online/timestamp; ignored');
      return;
    }
    if (s.timestamp < this.hostStateTs) return;
    this.hostStateTs = s.timestamp;
    this.hostOnline = s.online;
    this.log.info({ host: this.opts.primaryHostId, online: s.online }, 'Sparkplug: primary host application state');
    if (s.online && !this.born) this.birth();
    else if (!s.online && this.born) void this.cycle();
  }

  /** Primary host went offline: NDEATH, disconnect, connect again (next bdSeq) and wait for it to come back. */
  private async cycle(): Promise<void> {
    if (this.cycling) return;
    this.cycling = true;
    try {
      await this.publishDeath();
      this.setBorn(false);
      await this.client.endAsync();
      if (!this.closing) this.client.reconnect();
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'Sparkplug: disconnect after host offline failed');
    } finally {
      this.cycling = false;
    }
  }

  private async publishDeath(): Promise<void> {
    if (!this.client.connected) return;
    const will = this.will();
    await this.client.publishAsync(will.topic, will.payload as Buffer, { qos: 1, retain: false });
    this.mMessages.inc({ type: 'NDEATH' });
  }

  /** Clean shutdown: a disconnect does not fire the will, so NDEATH is published first (bounded by timeoutMs). */
  async close(timeoutMs: number): Promise<void> {
    this.closing = true;
    if (this.flushTimer) clearInterval(this.flushTimer);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((res) => {
      timer = setTimeout(res, timeoutMs);
    });
    const work = (async () => {
      if (this.born) await this.publishDeath();
      this.setBorn(false);
      await this.client.endAsync();
    })().catch((err: Error) => this.log.warn({ err: err.message }, 'Sparkplug: close failed'));
    await Promise.race([work, timeout]);
    clearTimeout(timer);
    if (!this.client.disconnected) this.client.end(true);
  }
}
