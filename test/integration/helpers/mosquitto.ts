// A real mosquitto broker on a free loopback port, plain or TLS (+ username/password, optional client
// certificates); stop/start keep the port so a test can take the broker away and bring it back.
import { writeFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { join } from 'node:path';
import { freePort } from './env';
import { Proc } from './proc';
import { TestPki } from './tls';
import { waitFor } from './wait';

export interface MosquittoOptions {
  dir: string;                       // where mosquitto.conf (and its log) go
  port?: number;                     // default: a free port
  tls?: TestPki;                     // serve TLS with this PKI's server certificate
  requireClientCert?: boolean;       // with tls: clients must present a certificate signed by the CA
  passwordFile?: string;             // disallow anonymous clients, check users against this file
}

export class Mosquitto {
  port = 0;
  proc: Proc | null = null;
  private conf = '';
  private generation = 0;

  constructor(private readonly opts: MosquittoOptions) {}

  get url(): string {
    return `${this.opts.tls ? 'mqtts' : 'mqtt'}://127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    if (!this.port) this.port = this.opts.port ?? (await freePort());
    if (!this.conf) this.writeConf();
    this.generation += 1;
    this.proc = new Proc(`mosquitto#${this.generation}`, 'mosquitto', ['-c', this.conf]);
    await waitFor(`mosquitto accepting connections on 127.0.0.1:${this.port}`, () => {
      if (this.proc && !this.proc.running) throw new Error(`mosquitto exited: ${this.proc.tail()}`);
      return canConnect(this.port);
    }, 10000, 50);
    return this;
  }

  async stop(): Promise<void> {
    if (this.proc) await this.proc.stop(3000);
    this.proc = null;
  }

  /** Simulates a crashed broker (no clean disconnects, no chance to send anything). */
  async kill(): Promise<void> {
    if (this.proc) {
      this.proc.signal('SIGKILL');
      await this.proc.waitExit(5000);
    }
    this.proc = null;
  }

  private writeConf(): void {
    const o = this.opts;
    const lines = [
      `listener ${this.port} 127.0.0.1`,
      `allow_anonymous ${o.passwordFile ? 'false' : 'true'}`,
      'persistence false',
      'log_dest stdout',
      'log_type error',
      'log_type warning',
      'log_type notice',
      'log_type information',
      'connection_messages true',
    ];
    // mosquitto started as root drops to the "mosquitto" user, which cannot read a test's 0600 key files.
    if (process.getuid && process.getuid() === 0) lines.push('user root');
    if (o.passwordFile) lines.push(`password_file ${o.passwordFile}`);
    if (o.tls) {
      lines.push(`cafile ${o.tls.ca}`, `certfile ${o.tls.serverCert}`, `keyfile ${o.tls.serverKey}`);
      if (o.requireClientCert) lines.push('require_certificate true');
    }
    this.conf = join(o.dir, `mosquitto-${process.pid}-${Date.now()}.conf`);
    writeFileSync(this.conf, lines.join('\n') + '\n');
  }
}

export function canConnect(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((res) => {
    const s = tcpConnect({ port, host });
    s.once('connect', () => { s.destroy(); res(true); });
    s.once('error', () => res(false));
    s.setTimeout(1000, () => { s.destroy(); res(false); });
  });
}
