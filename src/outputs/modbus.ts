/**
 * Modbus TCP outputs (docs/sparkplug.md, "Modbus TCP reject output" and "Heartbeat"): per-camera reject outputs
 * (a coil pulse or a register count per NG frame) and heartbeats, sharing one connection per PLC. Written whatever
 * the MQTT broker does.
 */
import { Counter, Gauge, Registry } from 'prom-client';
import type { Logger } from '../log';
import type { ModbusConfig } from '../plc/config';
import { HeartbeatConfig, ModbusHeartbeat } from '../modbus/heartbeat';
import { ModbusLink } from '../modbus/link';
import { DROP_REASONS, RejectOutput } from '../modbus/reject-output';
import type { Output, OutputHealth } from '../pipeline/interfaces';
import type { CameraStatusMessage, RejectMessage, RejectOutputStatus, ResultMessage } from '../pipeline/records';

export class ModbusOutputs implements Output {
  readonly name = 'modbus';
  readonly links = new Map<string, ModbusLink>();
  readonly outputs = new Map<string, RejectOutput>();
  readonly heartbeats: ModbusHeartbeat[] = [];
  /** When each camera last had a frame scored (this process's clock), for the heartbeats' liveness rule. */
  private readonly lastScored = new Map<string, number>();
  private readonly cameras = new Set<string>();

  /** stallTimeoutMs: the default staleMs of a heartbeat. */
  constructor(
    m: ModbusConfig,
    stallTimeoutMs: number,
    registry: Registry,
    private readonly log: Logger,
  ) {
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
        const staleMs = h.staleMs ?? stallTimeoutMs;
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

  publishResult(r: ResultMessage): boolean {
    this.lastScored.set(r.camera, Date.now());
    return true;
  }

  publishReject(r: RejectMessage): boolean {
    const o = this.outputs.get(r.camera);
    o?.reject({ frameSeq: r.seq, capturedAt: r.capturedAt, deadline: r.deadline });
    return o !== undefined;
  }

  cameraAdded(s: CameraStatusMessage): void {
    this.cameras.add(s.camera);
  }

  cameraRemoved(camera: string): void {
    this.cameras.delete(camera);
    this.lastScored.delete(camera);
  }

  /** The camera's reject output on its status topic. */
  cameraStatusExtras(camera: string): { plc?: RejectOutputStatus } {
    const plc = this.outputs.get(camera)?.status();
    return plc ? { plc } : {};
  }

  /**
   * Link states in /healthz; a PLC link that is not up degrades the daemon (its rejects are dropped), named once
   * per PLC with the cameras it serves (docs/daemon.md, /healthz).
   */
  health(): OutputHealth {
    const fields: Record<string, unknown> = {};
    const statuses = [...this.outputs].map(([cam, o]) => [cam, o.status()] as const);
    if (this.outputs.size > 0) fields.modbus = Object.fromEntries(statuses);
    if (this.heartbeats.length > 0) fields.modbusHeartbeats = Object.fromEntries(this.heartbeats.map((hb) => [hb.label, hb.status()]));
    const links = new Map<string, { link: string; cameras: string[]; dropped: number; lastError?: string }>();
    for (const [cam, o] of statuses) {
      const l = links.get(o.plc) ?? { link: o.link, cameras: [], dropped: 0, lastError: o.lastError };
      l.cameras.push(cam);
      l.dropped += o.dropped;
      links.set(o.plc, l);
    }
    const degraded: string[] = [];
    for (const [endpoint, l] of links) {
      if (l.link === 'up') continue;
      degraded.push(`PLC link ${l.link}: ${endpoint}${l.lastError ? ` (${l.lastError})` : ''}, rejects of ${l.cameras.join(', ')} are dropped (${l.dropped} so far)`);
    }
    return { fields, degraded };
  }

  /** Heartbeats stop first; pending pulses finish (coils OFF), connections close; bounded by timeoutMs. */
  async close(_final: CameraStatusMessage[], timeoutMs: number): Promise<void> {
    for (const hb of this.heartbeats) hb.close();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((res) => {
      timer = setTimeout(res, timeoutMs);
    });
    const work = (async () => {
      await Promise.all([...this.outputs.values()].map((o) => o.close()));
      await Promise.all([...this.links.values()].map((l) => l.close()));
    })().catch((err: Error) => this.log.warn({ err: err.message }, 'Modbus: close failed'));
    await Promise.race([work, timeout]);
    clearTimeout(timer);
  }
}

/** Modbus outputs when any reject output or heartbeat is configured. */
export function modbusOutput(c: { modbus: ModbusConfig; ingest: { stallTimeoutMs: number } }, registry: Registry, log: Logger): ModbusOutputs | null {
  if (c.modbus.outputs.length === 0 && c.modbus.heartbeats.length === 0) return null;
  return new ModbusOutputs(c.modbus, c.ingest.stallTimeoutMs, registry, log);
}
