/**
 * sd_notify(3) without libsystemd: datagrams to $NOTIFY_SOCKET sent from the daemon's own PID (so
 * NotifyAccess=main works) through the unix-dgram addon (node's dgram has no AF_UNIX). READY=1, STATUS=,
 * STOPPING=1 and WATCHDOG=1 every WATCHDOG_USEC/2 while the caller says the pipeline is healthy.
 * unix-dgram cannot address abstract sockets ("@name"): those go through one long-lived python3 relay process
 * (messages then come from the relay's PID, fine for supervisors that do not check it; systemd's own socket is a
 * path).
 */
import { spawn } from 'node:child_process';
import type { Logger } from '../log';

export interface DatagramSender {
  send(path: string, message: Buffer): Promise<void>;
  close(): void;
}

/** The real transport; null when the addon cannot be loaded (logged by the caller). */
export function unixDgramSender(): DatagramSender {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const unix = require('unix-dgram') as typeof import('unix-dgram');
  const sock = unix.createSocket('unix_dgram');
  sock.on('error', () => {
    /* reported through send callbacks */
  });
  return {
    send: (path, message) =>
      new Promise((resolve, reject) => sock.send(message, 0, message.length, path, (err) => (err ? reject(err) : resolve()))),
    close: () => sock.close(),
  };
}

const ABSTRACT_RELAY = `
import socket, sys
addr = "\\0" + sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
for line in sys.stdin:
    line = line.strip()
    if line:
        try:
            s.sendto(bytes.fromhex(line), addr)
        except OSError as e:
            print("sendto failed: %s" % e, file=sys.stderr, flush=True)
`;

/** Abstract-socket transport: one python3 process that sends each hex-encoded line as one datagram. */
export function abstractRelaySender(name: string, log: Logger, python = process.env.ETSTPM_PYTHON ?? 'python3'): DatagramSender {
  const proc = spawn(python, ['-u', '-c', ABSTRACT_RELAY, name], { stdio: ['pipe', 'ignore', 'pipe'] });
  let dead: string | null = null;
  proc.on('error', (err) => {
    dead = `cannot start ${python}: ${err.message}`;
    log.warn({ err: dead }, 'abstract NOTIFY_SOCKET relay unavailable: systemd notifications disabled');
  });
  proc.on('exit', (code) => {
    dead ??= `relay exited (${code})`;
  });
  proc.stderr?.on('data', (d: Buffer) => log.warn({ relay: d.toString().trim() }, 'NOTIFY_SOCKET relay'));
  proc.stdin?.on('error', () => undefined);
  proc.unref();
  return {
    send: (_path, message) =>
      dead
        ? Promise.reject(new Error(dead))
        : new Promise((resolve, reject) => proc.stdin?.write(`${message.toString('hex')}\n`, (err) => (err ? reject(err) : resolve()))),
    close: () => {
      proc.stdin?.end();
    },
  };
}

export interface WatchdogHealth {
  ok: boolean;
  reason?: string;
}

export class SystemdNotifier {
  readonly socketPath: string | null;
  /** Ping period (WATCHDOG_USEC / 2) in ms, or null when systemd runs no watchdog for us. */
  readonly watchdogIntervalMs: number | null;
  private sender: DatagramSender | null = null;
  private timer: NodeJS.Timeout | null = null;
  private withheld: string | null = null;
  pings = 0;

  constructor(
    env: NodeJS.ProcessEnv,
    private readonly log: Logger,
    makeSender: () => DatagramSender = unixDgramSender,
    makeAbstractSender: (name: string) => DatagramSender = (name) => abstractRelaySender(name, log),
  ) {
    const sock = env.NOTIFY_SOCKET ?? '';
    let path: string | null = null;
    if (sock.startsWith('@') && sock.length > 1) {
      path = sock;
      log.info({ socket: sock }, 'NOTIFY_SOCKET is an abstract socket: notifications go through a python3 relay');
      this.sender = makeAbstractSender(sock.slice(1));
    } else if (sock.startsWith('/')) {
      path = sock;
      try {
        this.sender = makeSender();
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'unix-dgram addon unavailable: systemd notifications disabled');
        path = null;
      }
    } else if (sock !== '') {
      log.warn({ socket: sock }, 'NOTIFY_SOCKET is neither an absolute path nor @abstract: systemd notifications disabled');
    }
    this.socketPath = path;
    const usec = Number(env.WATCHDOG_USEC ?? '');
    const pidOk = env.WATCHDOG_PID === undefined || env.WATCHDOG_PID === '' || Number(env.WATCHDOG_PID) === process.pid;
    this.watchdogIntervalMs = path !== null && Number.isFinite(usec) && usec > 0 && pidOk ? Math.max(1, Math.floor(usec / 2000)) : null;
  }

  get enabled(): boolean {
    return this.socketPath !== null;
  }

  async notify(fields: Record<string, string | number>): Promise<boolean> {
    if (!this.sender || !this.socketPath) return false;
    // One field per line; a newline inside STATUS would start a new (bogus) field.
    const text = Object.entries(fields)
      .map(([k, v]) => `${k}=${String(v).replace(/[\r\n]+/g, ' ')}`)
      .join('\n');
    try {
      await this.sender.send(this.socketPath, Buffer.from(text));
      return true;
    } catch (err) {
      this.log.warn({ err: (err as Error).message, socket: this.socketPath }, 'sd_notify send failed');
      return false;
    }
  }

  ready(status: string): Promise<boolean> {
    return this.notify({ READY: 1, STATUS: status, MAINPID: process.pid });
  }

  status(text: string): Promise<boolean> {
    return this.notify({ STATUS: text });
  }

  stopping(): Promise<boolean> {
    return this.notify({ STOPPING: 1, STATUS: 'stopping' });
  }

  /** Pings WATCHDOG=1 every interval while health().ok; withholds (and logs why) otherwise. */
  startWatchdog(health: () => WatchdogHealth): void {
    if (this.watchdogIntervalMs === null || this.timer) return;
    this.log.info({ intervalMs: this.watchdogIntervalMs }, 'systemd watchdog enabled');
    this.timer = setInterval(() => {
      const h = health();
      if (h.ok) {
        if (this.withheld !== null) this.log.info('pipeline processing again: watchdog pings resumed');
        this.withheld = null;
        this.pings++;
        void this.notify({ WATCHDOG: 1 });
      } else if (this.withheld !== h.reason) {
        this.withheld = h.reason ?? 'unhealthy';
        this.log.warn({ reason: this.withheld }, 'watchdog ping withheld: pipeline not processing frames');
      }
    }, this.watchdogIntervalMs);
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    try {
      this.sender?.close();
    } catch {
      /* already closed */
    }
    this.sender = null;
  }
}
