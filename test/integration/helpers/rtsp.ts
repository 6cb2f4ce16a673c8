// A real RTSP camera: gst-rtsp-server (test/fixtures/rtsp_server.py, system python3 + python3-gi) looping a list of
// images at a given fps; kill() + start() bring it back on the same port, like a camera that rebooted.
import { join } from 'node:path';
import { FIXTURES, SYSTEM_PYTHON, freePort } from './env';
import { Proc } from './proc';

export interface RtspOptions {
  images: string[];             // files and/or folders (name order)
  fps?: number;                 // default 10
  hold?: number;                // frames per image, default 1
  size?: string;                // "WxH", default: the first image's size
  codec?: 'h264' | 'h264-lossless' | 'raw';
  protocols?: string;           // "tcp,udp" (default)
  mount?: string;               // default "/cam"
  port?: number;                // default: a free port
}

export class RtspServer {
  port = 0;
  proc: Proc | null = null;
  clients = 0;
  private generation = 0;

  constructor(private readonly opts: RtspOptions) {}

  get url(): string {
    return `rtsp://127.0.0.1:${this.port}${this.opts.mount ?? '/cam'}`;
  }

  async start(timeoutMs = 30000): Promise<this> {
    if (!this.port) this.port = this.opts.port ?? (await freePort());
    const o = this.opts;
    const args = [join(FIXTURES, 'rtsp_server.py'), '--port', String(this.port), '--mount', o.mount ?? '/cam',
      '--fps', String(o.fps ?? 10), '--hold', String(o.hold ?? 1), '--codec', o.codec ?? 'h264',
      '--protocols', o.protocols ?? 'tcp,udp'];
    if (o.size) args.push('--size', o.size);
    this.generation += 1;
    const p = new Proc(`rtsp#${this.generation}`, SYSTEM_PYTHON, [...args, ...o.images]);
    p.onOutput((line) => { if (line.startsWith('CLIENT ')) this.clients += 1; });
    this.proc = p;
    await p.waitLine(/^READY rtsp:/, timeoutMs);
    return this;
  }

  /** SIGKILL: the camera vanishes mid-stream (no RTSP TEARDOWN, sockets reset). */
  async kill(): Promise<void> {
    if (this.proc) {
      this.proc.signal('SIGKILL');
      await this.proc.waitExit(5000);
    }
    this.proc = null;
  }

  async stop(): Promise<void> {
    if (this.proc) await this.proc.stop();
    this.proc = null;
  }
}
