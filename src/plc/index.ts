/**
 * The PLC / SCADA outputs beside the JSON topics (issue 10): a Sparkplug B edge node (opt-in) and Modbus TCP reject
 * outputs (opt-in, per camera). The daemon hands it plain records - results, rejects, camera statuses - through a
 * handful of calls; nothing here reaches into the pipeline or the cameras.
 */
import { Counter, Gauge, Registry } from 'prom-client';
import type { Logger } from '../log';
import { ModbusLink } from '../modbus/link';
import { DROP_REASONS, RejectOutput, RejectOutputStatus } from '../modbus/reject-output';
import type { CameraStatusMessage, RejectMessage, ResultMessage } from '../publish/messages';
import { DeviceStatus, NodeInfo, SparkplugEdgeNode, SparkplugHealth, SparkplugMqttOptions } from '../sparkplug/edge-node';
import type { PlcConfig } from './config';

export interface PlcInputs {
  config: PlcConfig & { mqtt: Omit<SparkplugMqttOptions, 'redactedUrl'> };
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
}

export class PlcOutputs {
  readonly sparkplug: SparkplugEdgeNode | null = null;
  readonly links = new Map<string, ModbusLink>();
  readonly outputs = new Map<string, RejectOutput>();
  private readonly ngCounts = new Map<string, number>();
  private readonly mLinkUp: Gauge | null = null;
  private readonly mWritten: Counter | null = null;
  private readonly mDropped: Counter | null = null;

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
    if (c.modbus.outputs.length === 0) return;
    const registers = [registry];
    this.mLinkUp = new Gauge({ name: 'etstpm_modbus_link_up', help: '1 while the Modbus TCP connection to the PLC is up', labelNames: ['plc'], registers });
    this.mWritten = new Counter({ name: 'etstpm_modbus_rejects_written_total', help: 'Reject writes the PLC acknowledged before the deadline', labelNames: ['camera'], registers });
    this.mDropped = new Counter({
      name: 'etstpm_modbus_rejects_dropped_total',
      help: 'Rejects not written (deadline, disconnected, timeout, error, queue_full); never written late',
      labelNames: ['camera', 'reason'],
      registers,
    });
    const m = c.modbus;
    for (const o of m.outputs) {
      const key = `${o.host}:${o.port}`;
      let link = this.links.get(key);
      if (!link) {
        link = new ModbusLink(
          { host: o.host, port: o.port, connectTimeoutMs: m.connectTimeoutMs, requestTimeoutMs: m.requestTimeoutMs, reconnectMinMs: m.reconnectMinMs, reconnectMaxMs: m.reconnectMaxMs },
          log,
        );
        const gauge = this.mLinkUp;
        gauge.set({ plc: key }, 0);
        link.on('up', () => gauge.set({ plc: key }, 1));
        link.on('down', () => gauge.set({ plc: key }, 0));
        this.links.set(key, link);
      }
      this.mWritten.inc({ camera: o.camera }, 0);
      for (const reason of DROP_REASONS) this.mDropped.inc({ camera: o.camera, reason }, 0);
      const written = this.mWritten;
      const dropped = this.mDropped;
      this.outputs.set(
        o.camera,
        new RejectOutput(o, link, { written: (camera) => written.inc({ camera }), dropped: (camera, reason) => dropped.inc({ camera, reason }) }, log),
      );
    }
    for (const l of this.links.values()) l.start();
  }

  get active(): boolean {
    return this.sparkplug !== null || this.outputs.size > 0;
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
    let ng = this.ngCounts.get(r.camera) ?? 0;
    if (r.verdict === 'ng') this.ngCounts.set(r.camera, ++ng);
    this.sparkplug?.result(r.camera, { frameSeq: r.seq, capturedAt: r.capturedAt, score: r.score, verdict: r.verdict, ngCount: ng, latencyMs: r.latencyMs });
  }

  reject(r: RejectMessage): void {
    this.outputs.get(r.camera)?.reject({ frameSeq: r.seq, capturedAt: r.capturedAt, deadline: r.deadline });
  }

  cameraAdded(s: CameraStatusMessage): void {
    this.sparkplug?.addDevice(s.camera, deviceStatus(s));
  }

  cameraRemoved(id: string): void {
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
    return h;
  }

  /** Pending pulses finish (coils OFF), NDEATH is published, connections close; bounded by timeoutMs. */
  async close(timeoutMs: number): Promise<void> {
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
