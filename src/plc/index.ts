/**
 * The PLC / SCADA outputs beside the JSON topics (issue 10): a Sparkplug B edge node (opt-in) and Modbus TCP reject
 * outputs (opt-in, per camera). The daemon hands it plain records - results, rejects, camera statuses - through a
 * handful of calls; nothing here reaches into the pipeline or the cameras.
 */
import { Counter, Gauge, Registry } from 'prom-client';
import type { Logger } from '../log';
import { HeartbeatConfig, HeartbeatStatus, ModbusHeartbeat } from '../modbus/heartbeat';
import { ModbusLink } from '../modbus/link';
import { DROP_REASONS, RejectOutput, RejectOutputStatus } from '../modbus/reject-output';
import type { CameraStatusMessage, RejectMessage, ResultMessage } from '../pipeline/records';
import { DeviceStatus, NodeInfo, SparkplugEdgeNode, SparkplugHealth, SparkplugMqttOptions } from '../sparkplug/edge-node';
import type { PlcConfig } from './config';

export interface PlcInputs {
  /** ingest.stallTimeoutMs: the default staleMs of a Modbus heartbeat. */
  config: PlcConfig & { mqtt: Omit<SparkplugMqttOptions, 'redactedUrl'>; ingest: { stallTimeoutMs: number } };
  /** The broker actually used (the embedded one's URL when mqtt.url is ""), and the same without credentials. */
  mqttUrl: string;
  redactedUrl: string;
  node: NodeInfo;
  registry: Registry;
}

/** What the pipeline publishes through (the Publisher today; a result sink after the issue 12 refactor). */
export interface ResultSinkLike {
  publishResult(r: ResultMessage): boolean;
  publishReject(r: RejectMessage): boolean;
}

export interface PlcHealth {
  sparkplug?: SparkplugHealth;
  modbus?: Record<string, RejectOutputStatus>;
  /** Keyed "host:port/type/address". */
  modbusHeartbeats?: Record<string, HeartbeatStatus>;
}

export class PlcOutputs {
  readonly sparkplug: SparkplugEdgeNode | null = null;
  readonly links = new Map<string, ModbusLink>();
  readonly outputs = new Map<string, RejectOutput>();
  readonly heartbeats: ModbusHeartbeat[] = [];
  private readonly ngCounts = new Map<string, number>();
  /** When each camera last had a frame scored (this process's clock), for the heartbeats' liveness rule. */
  private readonly lastScored = new Map<string, number>();
  private readonly cameras = new Set<string>();

  constructor(
    inputs: PlcInputs,
    private readonly log: Logger,
  ) {
    const { config: c, registry } = inputs;
    if (c.sparkplug.enabled) {
      this.sparkplug = new SparkplugEdgeNode(
        {
          groupId: c.sparkplug.groupId,
          edgeNodeId: c.sparkplug.edgeNodeId,
          primaryHostId: c.sparkplug.primaryHostId,
          dataPeriodMs: c.sparkplug.dataPeriodMs,
          mqtt: { ...c.mqtt, url: inputs.mqttUrl, clientId: c.sparkplug.clientId || `${c.mqtt.clientId}-spb`, redactedUrl: inputs.redactedUrl },
        },
        inputs.node,
        log,
        registry,
      );
    }
    const m = c.modbus;
    if (m.outputs.length === 0 && m.heartbeats.length === 0) return;
    const registers = [registry];
    const mLinkUp = new Gauge({ name: 'etstpm_modbus_link_up', help: '1 while the PLC answers on its Modbus TCP connection', labelNames: ['plc'], registers });
    const link = (host: string, port: number): ModbusLink => {
      const key = `${host}:${port}`;
      let l = this.links.get(key);
      if (!l) {
        l = new ModbusLink(
          { host, port, connectTimeoutMs: m.connectTimeoutMs, requestTimeoutMs: m.requestTimeoutMs, reconnectMinMs: m.reconnectMinMs, reconnectMaxMs: m.reconnectMaxMs },
          log,
        );
        mLinkUp.set({ plc: key }, 0);
        l.on('up', () => mLinkUp.set({ plc: key }, 1));
        l.on('down', () => mLinkUp.set({ plc: key }, 0));
        this.links.set(key, l);
      }
      return l;
    };
    if (m.outputs.length > 0) {
      const written = new Counter({ name: 'etstpm_modbus_rejects_written_total', help: 'Reject writes the PLC acknowledged before the deadline', labelNames: ['camera'], registers });
      const dropped = new Counter({
        name: 'etstpm_modbus_rejects_dropped_total',
        help: 'Rejects not written (deadline, disconnected, timeout, error, queue_full); never written late',
        labelNames: ['camera', 'reason'],
        registers,
      });
      for (const o of m.outputs) {
        written.inc({ camera: o.camera }, 0);
        for (const reason of DROP_REASONS) dropped.inc({ camera: o.camera, reason }, 0);
        this.outputs.set(
          o.camera,
          new RejectOutput(o, link(o.host, o.port), { written: (camera) => written.inc({ camera }), dropped: (camera, reason) => dropped.inc({ camera, reason }) }, log),
        );
      }
    }
    if (m.heartbeats.length > 0) {
      const beats = new Counter({ name: 'etstpm_modbus_heartbeats_written_total', help: 'Heartbeat writes the PLC acknowledged', labelNames: ['heartbeat'], registers });
      const hbs = this.heartbeats;
      new Gauge({
        name: 'etstpm_modbus_heartbeat_beating',
        help: '1 while a Modbus heartbeat is being written (inspection alive, PLC link up)',
        labelNames: ['heartbeat'],
        registers,
        // Read at scrape time: the state is a rule over clocks, not an event.
        collect() {
          for (const hb of hbs) this.set({ heartbeat: hb.label }, hb.status().beating ? 1 : 0);
        },
      });
      for (const h of m.heartbeats) {
        const staleMs = h.staleMs ?? c.ingest.stallTimeoutMs;
        const label = `${h.host}:${h.port}/${h.type}/${h.address}`;
        beats.inc({ heartbeat: label }, 0);
        this.heartbeats.push(new ModbusHeartbeat(h, link(h.host, h.port), () => this.inspectionDown(h, staleMs), () => beats.inc({ heartbeat: label }), log));
      }
    }
    for (const l of this.links.values()) l.start();
    for (const hb of this.heartbeats) hb.start();
  }

  /**
   * The heartbeats' liveness rule (docs/sparkplug.md, "Heartbeat"): null while every watched camera (every
   * configured camera when the heartbeat names none) has had a frame scored within staleMs, else why not.
   */
  private inspectionDown(h: HeartbeatConfig, staleMs: number): string | null {
    const ids = h.cameras ?? [...this.cameras];
    if (ids.length === 0) return 'no camera configured';
    const now = Date.now();
    for (const id of ids) {
      const t = this.lastScored.get(id);
      if (!this.cameras.has(id)) return `camera ${id} is not configured`;
      if (t === undefined) return `camera ${id} has no scored frame yet`;
      if (now - t > staleMs) return `camera ${id} has no scored frame for ${now - t} ms (staleMs ${staleMs})`;
    }
    return null;
  }

  get active(): boolean {
    return this.sparkplug !== null || this.outputs.size > 0 || this.heartbeats.length > 0;
  }

  /**
   * The pipeline's publisher with results and rejects also handed to these outputs (the PLC is written whatever
   * the MQTT broker does). Everything else passes straight through to `sink`.
   */
  tee<S extends ResultSinkLike>(sink: S): S {
    if (!this.active) return sink;
    const publishResult = (r: ResultMessage): boolean => {
      this.result(r);
      return sink.publishResult(r);
    };
    const publishReject = (r: RejectMessage): boolean => {
      this.reject(r);
      return sink.publishReject(r);
    };
    return new Proxy(sink, {
      get(target, prop) {
        if (prop === 'publishResult') return publishResult;
        if (prop === 'publishReject') return publishReject;
        const v = Reflect.get(target, prop, target) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
  }

  result(r: ResultMessage): void {
    this.lastScored.set(r.camera, Date.now());
    let ng = this.ngCounts.get(r.camera) ?? 0;
    if (r.verdict === 'ng') this.ngCounts.set(r.camera, ++ng);
    this.sparkplug?.result(r.camera, { frameSeq: r.seq, capturedAt: r.capturedAt, score: r.score, verdict: r.verdict, ngCount: ng, latencyMs: r.latencyMs });
  }

  reject(r: RejectMessage): void {
    this.outputs.get(r.camera)?.reject({ frameSeq: r.seq, capturedAt: r.capturedAt, deadline: r.deadline });
  }

  cameraAdded(s: CameraStatusMessage): void {
    this.cameras.add(s.camera);
    this.sparkplug?.addDevice(s.camera, deviceStatus(s));
  }

  cameraRemoved(id: string): void {
    this.cameras.delete(id);
    this.lastScored.delete(id);
    this.sparkplug?.removeDevice(id);
  }

  cameraStatus(s: CameraStatusMessage): void {
    this.sparkplug?.status(s.camera, deviceStatus(s));
  }

  setNode(patch: Partial<NodeInfo>): void {
    this.sparkplug?.setNode(patch);
  }

  /** The Modbus output of one camera, for its status topic. */
  outputStatus(camera: string): RejectOutputStatus | undefined {
    return this.outputs.get(camera)?.status();
  }

  health(): PlcHealth {
    const h: PlcHealth = {};
    if (this.sparkplug) h.sparkplug = this.sparkplug.health();
    if (this.outputs.size > 0) h.modbus = Object.fromEntries([...this.outputs].map(([cam, o]) => [cam, o.status()]));
    if (this.heartbeats.length > 0) h.modbusHeartbeats = Object.fromEntries(this.heartbeats.map((hb) => [hb.label, hb.status()]));
    return h;
  }

  /** Heartbeats stop first; pending pulses finish (coils OFF), NDEATH is published, connections close; bounded by timeoutMs. */
  async close(timeoutMs: number): Promise<void> {
    for (const hb of this.heartbeats) hb.close();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((res) => {
      timer = setTimeout(res, timeoutMs);
    });
    const work = (async () => {
      await Promise.all([...this.outputs.values()].map((o) => o.close()));
      await Promise.all([...this.links.values()].map((l) => l.close()));
    })().catch((err: Error) => this.log.warn({ err: err.message }, 'Modbus: close failed'));
    await Promise.all([Promise.race([work, timeout]), this.sparkplug?.close(timeoutMs)]);
    clearTimeout(timer);
  }
}

/** A camera's Sparkplug device values from its status message. */
function deviceStatus(s: CameraStatusMessage): DeviceStatus {
  return {
    state: s.state,
    fps: s.fps,
    modelName: s.model.name,
    modelVersion: s.model.version,
    rawThreshold: s.threshold?.raw ?? null,
    thresholdSource: s.threshold?.source ?? null,
    driftShare: s.drift?.share ?? null,
  };
}
