// A real RTSP camera: gst-rtsp-server (test/fixtures/rtsp_server.py, system python3 + python3-gi) looping a list of
// images at a given fps; kill() + start() bring it back on the same port, like a camera that rebooted (start(opts)
// with another size or codec: a camera reconfigured while it was down); freeze() makes it send its last image
// again and again until unfreeze().
import { join } from 'node:path';
import { FIXTURES, SYSTEM_PYTHON, freePort } from './env';
import { Proc } from './proc';

export interface RtspOptions {
  images: string[];             // files and/or folders (name order)
  fps?: number;                 // default 10
  hold?: number;                // frames per image, default 1
  size?: string;                // "WxH", default: the first image's size
  codec?: 'h264' | 'h265' | 'h264-lossless' | 'raw';
  kbps?: number;                // h264/h265 bitrate (fixture default 4000)
  gop?: number;                 // h264/h265 keyframe interval in frames (fixture default: fps)
  protocols?: string;           // "tcp,udp" (default)
  mount?: string;               // default "/cam"
  port?: number;                // default: a free port
  reportFrames?: boolean;       // count the frames pushed (pushed), from the server's FRAMES lines (1/s)
}

export class RtspServer {
  port = 0;
  proc: Proc | null = null;
  clients = 0;
  /** Frames pushed to all clients of the current server process, as last reported (--report-frames). */
  pushed = 0;
  private generation = 0;

  constructor(private opts: RtspOptions) {}

  get url(): string {
    return `rtsp://127.0.0.1:${this.port}${this.opts.mount ?? '/cam'}`;
  }

  async start(timeoutMs = 30000, change: Partial<RtspOptions> = {}): Promise<this> {
    this.opts = { ...this.opts, ...change };
    if (!this.port) this.port = this.opts.port ?? (await freePort());
    const o = this.opts;
    const args = [join(FIXTURES, 'rtsp_server.py'), '--port', String(this.port), '--mount', o.mount ?? '/cam',
      '--fps', String(o.fps ?? 10), '--hold', String(o.hold ?? 1), '--codec', o.codec ?? 'h264',
      '--protocols', o.protocols ?? 'tcp,udp'];
    if (o.size) args.push('--size', o.size);
    if (o.kbps) args.push('--kbps', String(o.kbps));
    if (o.gop) args.push('--gop', String(o.gop));
    if (o.reportFrames) args.push('--report-frames');
    this.pushed = 0;
    this.generation += 1;
    const p = new Proc(`rtsp#${this.generation}`, SYSTEM_PYTHON, [...args, ...o.images]);
    p.onOutput((line) => {
      if (line.startsWith('CLIENT ')) this.clients += 1;
      else if (line.startsWith('FRAMES ')) this.pushed = Number(line.slice(7));
    });
    this.proc = p;
    await p.waitLine(/^READY rtsp:/, timeoutMs);
    return this;
  }

  /** From now on every client gets the last image pushed (timestamps keep advancing). */
  async freeze(timeoutMs = 10000): Promise<void> {
    await this.toggle('SIGUSR1', /^FROZEN$/, timeoutMs);
  }

  async unfreeze(timeoutMs = 10000): Promise<void> {
    await this.toggle('SIGUSR2', /^UNFROZEN$/, timeoutMs);
  }

  private async toggle(sig: NodeJS.Signals, re: RegExp, timeoutMs: number): Promise<void> {
    const p = this.proc;
    if (!p) throw new Error('rtsp server not running');
    const from = p.lines.length;
    p.signal(sig);
    await p.waitLine(re, timeoutMs, from);
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
