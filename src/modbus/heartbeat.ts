/**
 * A heartbeat on the PLC: a coil toggled, or a holding register incremented, every periodMs while the inspection is
 * alive, so the PLC can stop the line (or bypass rejects) when it stops changing. It beats only while
 * - the daemon's event loop runs (the timer lives on it: a hung or stopped daemon stops beating), and
 * - every watched camera has had a frame scored within staleMs (a failed, stalled or frozen camera stops it).
 * docs/sparkplug.md, "Heartbeat".
 */
import type { Logger } from '../log';
import { errorText, isModbusException, ModbusLink, ModbusTarget } from './link';

export interface HeartbeatConfig {
  host: string;
  port: number;
  unitId: number;
  type: 'coil' | 'register';
  address: number;
  periodMs: number;
  /** Longest time without a scored frame of a watched camera; null = ingest.stallTimeoutMs. */
  staleMs: number | null;
  /** Watched cameras; null = every configured camera. */
  cameras: string[] | null;
}

export interface HeartbeatStatus {
  plc: string;
  type: 'coil' | 'register';
  address: number;
  beating: boolean;
  written: number;
  /** Why it is not beating. */
  reason?: string;
}

/** null while the inspection is alive, else why not. */
export type LivenessCheck = () => string | null;

export class ModbusHeartbeat {
  written = 0;
  private value = 0;
  private timer: NodeJS.Timeout | null = null;
  private busy = false;
  private pausedBy: string | null = 'not started';
  private refused: string | null = null;
  private readonly target: ModbusTarget;

  constructor(
    readonly cfg: HeartbeatConfig,
    readonly link: ModbusLink,
    private readonly alive: LivenessCheck,
    private readonly onWritten: () => void,
    private readonly log: Logger,
  ) {
    this.target = { unitId: cfg.unitId, type: cfg.type, address: cfg.address };
    // Continue from the PLC's value: a coil toggles from what it holds, a register counts on.
    link.onOpen(() => {
      this.link.read(this.target, this.link.boundedDeadline()).then(
        (v) => {
          this.value = v;
        },
        () => undefined, // the link logs its own state
      );
    });
  }

  get label(): string {
    return `${this.link.endpoint}/${this.cfg.type}/${this.cfg.address}`;
  }

  start(): void {
    this.timer ??= setInterval(() => this.tick(), this.cfg.periodMs);
  }

  status(): HeartbeatStatus {
    const s: HeartbeatStatus = { plc: this.link.endpoint, type: this.cfg.type, address: this.cfg.address, beating: this.pausedBy === null && this.link.state === 'up', written: this.written };
    if (this.pausedBy !== null) s.reason = this.pausedBy;
    else if (this.link.state !== 'up') s.reason = `PLC link ${this.link.state}`;
    return s;
  }

  private tick(): void {
    const why = this.alive();
    // One line per change between beating and paused, not per period (the reason's numbers change every tick).
    if (why !== null && this.pausedBy === null) this.log.warn({ heartbeat: this.label, reason: why }, 'Modbus: heartbeat paused');
    else if (why === null && this.pausedBy !== null) this.log.info({ heartbeat: this.label }, 'Modbus: heartbeat beating');
    this.pausedBy = why;
    if (why !== null || this.busy || this.link.state !== 'up') return;
    this.busy = true;
    const next = this.cfg.type === 'coil' ? 1 - this.value : (this.value + 1) & 0xffff;
    // Valid for one period at most: a beat that cannot be written in time is skipped, never written late.
    const deadline = Date.now() + Math.min(this.cfg.periodMs, this.link.opts.requestTimeoutMs);
    this.link
      .write(this.target, next, deadline)
      .then(
        () => {
          this.value = next;
          this.written++;
          this.refused = null;
          this.onWritten();
        },
        (err: unknown) => {
          // A refusal by a live PLC (illegal address ...) is a configuration problem: say so once. A dead link is
          // logged by the link itself.
          const text = errorText(err);
          if (isModbusException(err) && text !== this.refused) this.log.warn({ heartbeat: this.label, err: text }, 'Modbus: the PLC refused the heartbeat write');
          else this.log.debug({ heartbeat: this.label, err: text }, 'Modbus: heartbeat write failed');
          this.refused = isModbusException(err) ? text : null;
        },
      )
      .finally(() => {
        this.busy = false;
      });
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.pausedBy = 'stopped';
  }
}
