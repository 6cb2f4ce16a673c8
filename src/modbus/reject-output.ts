/**
 * The reject signal of one camera on a PLC: on every NG frame either a coil pulse (ON, pulseMs, OFF, then at least
 * gapMs OFF so the PLC sees separate edges) or a holding register counter incremented by one (the PLC acts on each
 * change). Rejects run in order, one at a time. A reject is carried out only if its write is answered before the
 * frame's deadline (capture time + reject.deadlineMs); otherwise it is dropped, counted and logged - never late
 * (the link's rules: src/modbus/link.ts, docs/sparkplug.md "Modbus TCP reject output").
 */
import type { Logger } from '../log';
import type { RejectOutputStatus } from '../pipeline/records';
import { errorText, isModbusException, ModbusLink, ModbusTarget, NoAnswer, RequestRefused } from './link';

export interface RejectOutputConfig {
  camera: string;
  host: string;
  port: number;
  unitId: number;
  type: 'coil' | 'register';
  /** 0-based protocol address (coil 0 = "00001", holding register 0 = "40001" in PLC manuals). */
  address: number;
  /** Coil only: how long the coil stays ON. */
  pulseMs: number;
  /** Coil only: least OFF time before the next pulse. */
  gapMs: number;
}

export interface RejectRequest {
  frameSeq: number;
  capturedAt: number;
  /** epoch ms after which the reject is void. */
  deadline: number;
}

/**
 * deadline: could not be sent before the deadline (PLC busy with earlier pulses, or late frame);
 * disconnected: PLC link down; timeout: the PLC did not answer by the deadline (the connection is reset);
 * error: the PLC answered with a Modbus exception; queue_full: more than MAX_QUEUED rejects waiting.
 */
export type DropReason = 'deadline' | 'disconnected' | 'timeout' | 'error' | 'queue_full';
export const DROP_REASONS: readonly DropReason[] = ['deadline', 'disconnected', 'timeout', 'error', 'queue_full'];

export interface RejectOutputHooks {
  written(camera: string, r: RejectRequest): void;
  dropped(camera: string, reason: DropReason, r: RejectRequest): void;
}

export type { RejectOutputStatus };

const MAX_QUEUED = 32;
/** At most one drop log line per output in this period, with the counts since the last one. */
export const DROP_LOG_EVERY_MS = 10000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class RejectOutput {
  written = 0;
  readonly dropped: Record<DropReason, number> = { deadline: 0, disconnected: 0, timeout: 0, error: 0, queue_full: 0 };
  private readonly queue: RejectRequest[] = [];
  private running: Promise<void> | null = null;
  /** Earliest time the next ON may be sent (previous OFF + gapMs). */
  private coilFreeAt = 0;
  private counter = 0;
  private closed = false;
  private endPulse: (() => void) | null = null;
  private lastDropLog = 0;
  private readonly dropsSinceLog: Partial<Record<DropReason, number>> = {};
  private readonly target: ModbusTarget;

  constructor(
    readonly cfg: RejectOutputConfig,
    readonly link: ModbusLink,
    private readonly hooks: RejectOutputHooks,
    private readonly log: Logger,
  ) {
    this.target = { unitId: cfg.unitId, type: cfg.type, address: cfg.address };
    link.onOpen(() => void this.onLinkOpen());
  }

  status(): RejectOutputStatus {
    const s: RejectOutputStatus = {
      plc: this.link.endpoint,
      link: this.link.state,
      type: this.cfg.type,
      address: this.cfg.address,
      written: this.written,
      dropped: DROP_REASONS.reduce((a, r) => a + this.dropped[r], 0),
    };
    if (this.link.lastError) s.lastError = this.link.lastError;
    return s;
  }

  /** An NG frame of this camera. Returns at once; the write happens in order behind earlier rejects. */
  reject(r: RejectRequest): void {
    if (this.closed) return;
    if (this.queue.length >= MAX_QUEUED) this.drop('queue_full', this.queue.shift() as RejectRequest);
    this.queue.push(r);
    this.running ??= this.drain().finally(() => {
      this.running = null;
    });
  }

  private async drain(): Promise<void> {
    for (let r = this.queue.shift(); r && !this.closed; r = this.queue.shift()) await this.one(r);
  }

  private async one(r: RejectRequest): Promise<void> {
    const c = this.cfg;
    try {
      if (c.type === 'coil') {
        const wait = this.coilFreeAt - Date.now();
        if (wait > 0) {
          if (Date.now() + wait >= r.deadline) throw new RequestRefused('deadline');
          await sleep(wait);
        }
        if (this.closed) return; // stopping: no new pulse
        await this.link.write(this.target, 1, r.deadline);
        this.ok(r);
        await this.pulseWait(c.pulseMs);
        await this.coilOff();
        this.coilFreeAt = Date.now() + c.gapMs;
      } else {
        const next = (this.counter + 1) & 0xffff;
        await this.link.write(this.target, next, r.deadline);
        this.counter = next;
        this.ok(r);
      }
    } catch (err) {
      if (err instanceof RequestRefused) this.drop(err.reason, r);
      else if (isModbusException(err)) this.drop('error', r, errorText(err));
      else if (err instanceof NoAnswer) this.drop('timeout', r, errorText(err));
      else this.drop('disconnected', r, errorText(err));
    }
  }

  /** The ON time of a pulse; cut short by close() so a stopping daemon leaves the coil OFF within its stop budget. */
  private pulseWait(ms: number): Promise<void> {
    // close() came while the ON write was in flight: end the pulse at once.
    if (this.closed) return Promise.resolve();
    return new Promise((res) => {
      const t = setTimeout(() => {
        this.endPulse = null;
        res();
      }, ms);
      this.endPulse = () => {
        clearTimeout(t);
        this.endPulse = null;
        res();
      };
    });
  }

  private ok(r: RejectRequest): void {
    this.written++;
    this.hooks.written(this.cfg.camera, r);
  }

  /**
   * OFF has a bounded deadline like every write. If it fails the link is down (reset) or the PLC refused it; the
   * next connection writes OFF first, before anything else.
   */
  private async coilOff(): Promise<void> {
    try {
      await this.link.write(this.target, 0, this.link.boundedDeadline());
    } catch (err) {
      const level = isModbusException(err) ? 'warn' : 'debug';
      this.log[level]({ camera: this.cfg.camera, plc: this.link.endpoint, coil: this.cfg.address, err: errorText(err) }, 'Modbus: reject coil OFF failed; it is written again on reconnect');
    }
  }

  /** New connection: coils to their safe state (OFF); a register counter continues from the PLC's value. */
  private async onLinkOpen(): Promise<void> {
    const c = this.cfg;
    try {
      if (c.type === 'coil') await this.link.write(this.target, 0, this.link.boundedDeadline());
      else this.counter = await this.link.read(this.target, this.link.boundedDeadline());
    } catch (err) {
      // The link logs its own state; only a refusal by a live PLC (exception response) is news here.
      const level = isModbusException(err) ? 'warn' : 'debug';
      this.log[level]({ camera: c.camera, plc: this.link.endpoint, err: errorText(err) }, `Modbus: ${c.type === 'coil' ? 'resetting the reject coil' : 'reading the reject counter'} after connect failed`);
    }
  }

  private drop(reason: DropReason, r: RejectRequest, detail?: string): void {
    this.dropped[reason]++;
    this.hooks.dropped(this.cfg.camera, reason, r);
    // One log line per output every DROP_LOG_EVERY_MS, with the counts by reason since the last one: a PLC outage at
    // 30 fps must not flood the journal (the link logs its own up/down once), yet every drop is in the counters.
    this.dropsSinceLog[reason] = (this.dropsSinceLog[reason] ?? 0) + 1;
    const now = Date.now();
    if (now - this.lastDropLog < DROP_LOG_EVERY_MS) return;
    this.log.warn(
      { camera: this.cfg.camera, plc: this.link.endpoint, reason, frameSeq: r.frameSeq, lateByMs: Math.max(0, now - r.deadline), droppedSinceLastLog: { ...this.dropsSinceLog }, err: detail },
      'Modbus: reject dropped (not written before its deadline)',
    );
    this.lastDropLog = now;
    for (const k of Object.keys(this.dropsSinceLog)) delete this.dropsSinceLog[k as DropReason];
  }

  /** Stops taking rejects; a pulse in progress ends now (coil OFF), then this resolves. */
  async close(): Promise<void> {
    this.closed = true;
    this.queue.length = 0;
    this.endPulse?.();
    await this.running;
  }
}
