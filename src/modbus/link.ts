/**
 * One Modbus TCP connection to a PLC (modbus-serial's TCP client), shared by every reject output that points at
 * the same host:port. Requests run one at a time (a PLC's Modbus server often serves a single transaction per
 * connection); each waits its turn and is refused without being sent once its deadline has passed. The link
 * reconnects by itself with exponential backoff; a request that times out closes the connection (a silent link is
 * a dead link, and a late answer must not be paired with the next request).
 */
import { EventEmitter } from 'node:events';
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

/** Why a request was not carried out: the caller counts these as dropped rejects. */
export class RequestRefused extends Error {
  constructor(readonly reason: 'deadline' | 'disconnected') {
    super(reason === 'deadline' ? 'deadline passed before the request could be sent' : 'PLC not connected');
  }
}

export type ModbusClient = ModbusRTU;

export interface LinkEvents {
  up: [];
  down: [string];
}

export class ModbusLink extends EventEmitter<LinkEvents> {
  state: LinkState = 'connecting';
  lastError: string | undefined;
  /** Successful connects; more than one means the link came back after an outage. */
  connects = 0;
  private client: ModbusRTU | null = null;
  private readonly backoff: Backoff;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private tail: Promise<unknown> = Promise.resolve();
  private closed = false;

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
      destroy(client);
      this.fail(errorText(err));
      return;
    }
    clearTimeout(timer);
    if (this.closed) {
      destroy(client);
      return;
    }
    this.client = client;
    client.on('close', () => this.lost(client, 'connection closed by the PLC'));
    this.state = 'up';
    this.lastError = undefined;
    this.connects++;
    this.backoff.reset();
    this.log.info({ plc: this.endpoint, connects: this.connects }, this.connects > 1 ? 'Modbus: PLC reconnected' : 'Modbus: PLC connected');
    this.emit('up');
  }

  /** The connection in use died: mark down once, and connect again. */
  private lost(client: ModbusRTU, why: string): void {
    if (client !== this.client) return;
    this.client = null;
    destroy(client);
    this.fail(why);
  }

  private fail(why: string): void {
    const wasUp = this.state === 'up';
    this.state = 'down';
    if (why !== this.lastError || wasUp) this.log.warn({ plc: this.endpoint, err: why }, 'Modbus: PLC not reachable; rejects are dropped until it is back');
    this.lastError = why;
    if (wasUp || this.connects === 0) this.emit('down', why);
    if (this.closed || this.reconnectTimer) return;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      void this.connect();
    }, this.backoff.next());
  }

  /**
   * Runs `fn` on the connection once the requests before it are done. Refused (RequestRefused) without sending
   * when the link is down or `deadline` (epoch ms, optional) has passed by then; the request's timeout is the
   * smaller of requestTimeoutMs and the time left.
   */
  request<T>(unitId: number, fn: (c: ModbusClient) => Promise<T>, deadline?: number): Promise<T> {
    const run = async (): Promise<T> => {
      const client = this.client;
      if (!client || this.state !== 'up') throw new RequestRefused('disconnected');
      const left = deadline === undefined ? Infinity : deadline - Date.now();
      if (left <= 0) throw new RequestRefused('deadline');
      client.setID(unitId);
      client.setTimeout(Math.max(1, Math.min(this.opts.requestTimeoutMs, Math.floor(left))));
      try {
        return await fn(client);
      } catch (err) {
        const e = err as { name?: string; errno?: string; modbusCode?: number };
        // An exception response (illegal address ...) comes from a live PLC; anything else means the link is gone.
        if (e.modbusCode === undefined) this.lost(client, errorText(err));
        throw err;
      }
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
    if (c) await new Promise<void>((res) => c.close(() => res()));
  }
}

function destroy(c: ModbusRTU): void {
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
