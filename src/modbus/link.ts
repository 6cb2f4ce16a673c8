/**
 * One Modbus TCP connection to a PLC (modbus-serial's TCP client), shared by every reject output and heartbeat that
 * points at the same host:port. docs/sparkplug.md, "Modbus TCP reject output", states the rules kept here:
 *
 * - One request at a time, each with a deadline; a request whose turn comes after its deadline is refused unsent.
 * - Every write is preceded on the same connection by a read of its own coil or register, and sent only once that
 *   read is answered: a PLC that stopped answering never gets a write queued in its TCP stack, where it would run
 *   when the PLC resumes (a TCP reset does not discard bytes the PLC's kernel already took; docs/decisions.md).
 * - A request unanswered by its deadline abandons the connection with a TCP reset (never a FIN that lets queued
 *   bytes go out later), and the link reconnects with exponential backoff.
 * - The link is `up` only once the PLC has answered on the current connection: a PLC that accepts TCP but does
 *   not answer stays `down` and is retried with growing delays instead of flapping up/down.
 * - One log line per state change; failed attempts while down go to debug.
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import ModbusRTU from 'modbus-serial';
import type { Logger } from '../log';
import { Backoff } from '../sources/backoff';

export type LinkState = 'connecting' | 'up' | 'down';

export interface ModbusLinkOptions {
  host: string;
  port: number;
  connectTimeoutMs: number;
  requestTimeoutMs: number;
  reconnectMinMs: number;
  reconnectMaxMs: number;
}

/** A coil or holding register on the PLC. */
export interface ModbusTarget {
  unitId: number;
  type: 'coil' | 'register';
  /** 0-based protocol address. */
  address: number;
}

/** Why a request was not sent: the caller counts these as dropped. */
export class RequestRefused extends Error {
  constructor(readonly reason: 'deadline' | 'disconnected') {
    super(reason === 'deadline' ? 'deadline passed before the request could be sent' : 'PLC not connected');
  }
}

/** Sent (or its liveness read sent) but unanswered by the deadline; the connection was reset. */
export class NoAnswer extends Error {
  constructor(ms: number) {
    super(`no answer from the PLC within ${ms} ms; connection reset`);
  }
}

export type ModbusClient = ModbusRTU;

export interface LinkEvents {
  up: [];
  down: [string];
}

/** An exception response (illegal address ...) comes from a live PLC. */
export function isModbusException(err: unknown): boolean {
  return typeof (err as { modbusCode?: unknown })?.modbusCode === 'number';
}

interface InFlight {
  client: ModbusRTU;
  abort: (err: Error) => void;
}

export class ModbusLink extends EventEmitter<LinkEvents> {
  state: LinkState = 'connecting';
  lastError: string | undefined;
  /** Connections the PLC answered on; more than one means the link came back after an outage. */
  connects = 0;
  /** Connection attempts that failed (refused, timed out, or connected but unanswered) since the link was last up. */
  failedAttempts = 0;
  private client: ModbusRTU | null = null;
  private readonly backoff: Backoff;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private tail: Promise<unknown> = Promise.resolve();
  private inFlight: InFlight | null = null;
  private readonly openHooks: (() => void)[] = [];
  private closed = false;
  private upAt = 0;
  private downAt = 0;

  constructor(
    readonly opts: ModbusLinkOptions,
    private readonly log: Logger,
  ) {
    super();
    this.backoff = new Backoff(opts.reconnectMinMs, opts.reconnectMaxMs);
  }

  get endpoint(): string {
    return `${this.opts.host}:${this.opts.port}`;
  }

  /** A deadline for writes that have none of their own (coil OFF, reset, heartbeat): one request timeout from now. */
  boundedDeadline(): number {
    return Date.now() + this.opts.requestTimeoutMs;
  }

  /**
   * `fn` runs on every new TCP connection before any other request is queued on it (coil reset, counter read).
   * It must queue its requests synchronously. The first answer on the connection brings the link up.
   */
  onOpen(fn: () => void): void {
    this.openHooks.push(fn);
  }

  start(): void {
    void this.connect();
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    const client = new ModbusRTU();
    client.on('error', (err: unknown) => this.lost(client, errorText(err)));
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        client.connectTCP(this.opts.host, { port: this.opts.port }),
        new Promise<never>((_, rej) => {
          timer = setTimeout(() => rej(new Error(`no connection within ${this.opts.connectTimeoutMs} ms`)), this.opts.connectTimeoutMs);
        }),
      ]);
    } catch (err) {
      clearTimeout(timer);
      reset(client);
      this.fail(errorText(err));
      return;
    }
    clearTimeout(timer);
    if (this.closed) {
      reset(client);
      return;
    }
    this.client = client;
    client.on('close', () => this.lost(client, 'connection closed by the PLC'));
    this.log.debug({ plc: this.endpoint }, 'Modbus: TCP connected; waiting for the PLC to answer');
    for (const hook of this.openHooks) hook();
  }

  /** The first answer on a connection: the PLC is really there. */
  private answered(client: ModbusRTU): void {
    if (client !== this.client || this.state === 'up') return;
    const wasDown = this.state === 'down';
    this.state = 'up';
    this.lastError = undefined;
    this.connects++;
    this.upAt = Date.now();
    const info = { plc: this.endpoint, connects: this.connects, ...(wasDown ? { downForMs: this.upAt - this.downAt, failedAttempts: this.failedAttempts } : {}) };
    this.failedAttempts = 0;
    this.log.info(info, this.connects > 1 ? 'Modbus: PLC reconnected' : 'Modbus: PLC connected');
    this.emit('up');
  }

  /** The connection in use died or was abandoned: reset it, and connect again after the backoff. */
  private lost(client: ModbusRTU, why: string): void {
    if (client !== this.client) return;
    this.client = null;
    reset(client);
    if (this.inFlight?.client === client) this.inFlight.abort(new RequestRefused('disconnected'));
    this.fail(why);
  }

  private fail(why: string): void {
    const was = this.state;
    this.lastError = why;
    if (was === 'up') {
      this.state = 'down';
      this.downAt = Date.now();
      // A link that stayed up a while starts the backoff afresh; one that drops right after coming up keeps growing
      // its delay, so a PLC that answers once and hangs again is not hammered.
      if (this.downAt - this.upAt >= this.opts.reconnectMaxMs) this.backoff.reset();
      this.log.warn({ plc: this.endpoint, err: why }, 'Modbus: PLC link down; rejects are dropped until it answers again');
      this.emit('down', why);
    } else if (was === 'connecting') {
      this.state = 'down';
      this.downAt = Date.now();
      this.log.warn({ plc: this.endpoint, err: why }, 'Modbus: PLC not reachable; rejects are dropped until it answers');
      this.emit('down', why);
    } else {
      this.failedAttempts++;
      this.log.debug({ plc: this.endpoint, err: why, failedAttempts: this.failedAttempts }, 'Modbus: PLC still not reachable');
    }
    if (this.closed || this.reconnectTimer) return;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      void this.connect();
    }, this.backoff.next());
  }

  /** Reads one coil (0/1) or holding register. */
  read(t: ModbusTarget, deadline: number): Promise<number> {
    return this.turn(t.unitId, deadline, async (c) => {
      if (t.type === 'coil') return (await c.readCoils(t.address, 1)).data[0] ? 1 : 0;
      return (await c.readHoldingRegisters(t.address, 1)).data[0] ?? 0;
    });
  }

  /**
   * Writes one coil (value 0/1) or holding register, only after a read of the same target has been answered on
   * the same connection (any answer, an exception response included, shows the PLC is serving requests).
   */
  write(t: ModbusTarget, value: number, deadline: number): Promise<void> {
    return this.turn(t.unitId, deadline, async (c) => {
      try {
        if (t.type === 'coil') await c.readCoils(t.address, 1);
        else await c.readHoldingRegisters(t.address, 1);
      } catch (err) {
        if (!isModbusException(err)) throw err;
      }
      if (t.type === 'coil') await c.writeCoil(t.address, value !== 0);
      else await c.writeRegister(t.address, value & 0xffff);
    });
  }

  /**
   * Runs `fn` on the connection once the requests before it are done, bounded by the earlier of `deadline` and one
   * request timeout. Refused unsent when there is no connection or the deadline has passed by then.
   */
  private turn<T>(unitId: number, deadline: number, fn: (c: ModbusClient) => Promise<T>): Promise<T> {
    const run = (): Promise<T> => {
      const client = this.client;
      if (!client) return Promise.reject(new RequestRefused('disconnected'));
      const now = Date.now();
      if (deadline <= now) return Promise.reject(new RequestRefused('deadline'));
      const ms = Math.max(1, Math.min(this.opts.requestTimeoutMs, deadline - now));
      client.setID(unitId);
      // The library's own timeout only as a backstop; ours below decides, and resets the connection.
      client.setTimeout(ms + 1000);
      return new Promise<T>((resolve, reject) => {
        let done = false;
        const finish = (): boolean => {
          if (done) return false;
          done = true;
          clearTimeout(timer);
          if (this.inFlight?.client === client) this.inFlight = null;
          return true;
        };
        const timer = setTimeout(() => {
          if (!finish()) return;
          reject(new NoAnswer(ms));
          this.lost(client, `no answer within ${ms} ms`);
        }, ms);
        this.inFlight = { client, abort: (err) => finish() && reject(err) };
        fn(client).then(
          (v) => {
            if (!finish()) return;
            this.answered(client);
            resolve(v);
          },
          (err: unknown) => {
            if (!finish()) return;
            if (isModbusException(err)) this.answered(client);
            else this.lost(client, errorText(err));
            reject(err instanceof Error ? err : new Error(errorText(err)));
          },
        );
      });
    };
    const p = this.tail.then(run, run);
    this.tail = p.catch(() => undefined);
    return p;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    await this.tail;
    const c = this.client;
    this.client = null;
    this.state = 'down';
    // Nothing is in flight any more: a plain close is safe here.
    if (c) await new Promise<void>((res) => c.close(() => res()));
  }
}

/**
 * Drops a connection with a TCP reset: bytes still in our send queue are discarded instead of being delivered (or
 * retransmitted, after a cable comes back) late. modbus-serial's destroy() sends a FIN, which lets them go out;
 * its TcpPort keeps the net.Socket in `_port._client` (modbus-serial 8.0.x; docs/decisions.md).
 */
function reset(c: ModbusRTU): void {
  const sock = (c as unknown as { _port?: { _client?: Socket } })._port?._client;
  try {
    if (sock && !sock.destroyed && typeof sock.resetAndDestroy === 'function') sock.resetAndDestroy();
  } catch {
    /* not connected yet: destroy below */
  }
  try {
    c.destroy(() => undefined);
  } catch {
    /* already gone */
  }
}

export function errorText(err: unknown): string {
  const e = err as { message?: string; errno?: string; code?: string };
  const m = e?.message ?? String(err);
  const code = e?.errno ?? e?.code;
  return code && !m.includes(code) ? `${m} (${code})` : m;
}
