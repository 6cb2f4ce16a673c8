// One place that sets up what most daemon tests share (tmp folder, test model, a real broker, an MQTT collector,
// RTSP cameras) and tears all of it down again, whatever the test did.
import { join } from 'node:path';
import { Camera, Config, Daemon, baseConfig } from './daemon';
import { SHARED, freePort, tmpDir } from './env';
import { makeTestModel, ModelManifest } from './model';
import { Mosquitto, MosquittoOptions } from './mosquitto';
import { CollectorOptions, MqttCollector } from './mqtt-collector';
import { RtspOptions, RtspServer } from './rtsp';

/** Real images for the RTSP cameras: MVTec grid (320 px grey PNG) good test images from ../shared. */
export const GRID_GOOD = (): string => join(SHARED, 'data', 'mvtec_grid_subset', 'grid', 'test', 'good');

let counter = 0;

export class Harness {
  readonly tmp = tmpDir();
  readonly prefix = `it${process.pid}x${++counter}`;
  model!: { dir: string; manifest: ModelManifest };
  broker!: Mosquitto;
  mqtt!: MqttCollector;
  private readonly cleanups: Array<() => Promise<unknown> | unknown> = [];
  private readonly daemons: Daemon[] = [];

  get dir(): string { return this.tmp.dir; }

  makeModel(opts: Parameters<typeof makeTestModel>[1] = {}, name = 'model'): { dir: string; manifest: ModelManifest } {
    this.model = makeTestModel(join(this.dir, name), opts);
    return this.model;
  }

  async startBroker(opts: Omit<MosquittoOptions, 'dir'> = {}, collector: Partial<CollectorOptions> = {}): Promise<void> {
    this.broker = await new Mosquitto({ dir: this.dir, ...opts }).start();
    this.cleanups.push(() => this.broker.stop());
    this.mqtt = await new MqttCollector({ url: this.broker.url, topics: [`${this.prefix}/#`], ...collector }).start();
    this.cleanups.push(() => this.mqtt.stop());
  }

  async camera(opts: Partial<RtspOptions> = {}): Promise<RtspServer> {
    const cam = await new RtspServer({ images: [GRID_GOOD()], fps: 10, codec: 'h264', size: '320x320', ...opts }).start();
    this.cleanups.push(() => cam.stop());
    return cam;
  }

  async config(cameras: Camera[], extra: Config = {}, http = false): Promise<Config> {
    return baseConfig({ cameras, modelDir: this.model.dir, mqttUrl: this.broker ? this.broker.url : '',
      prefix: this.prefix, httpPort: http ? await freePort() : 0, extra });
  }

  daemon(config: Config | string, opts: ConstructorParameters<typeof Daemon>[2] = {}): Daemon {
    const d = new Daemon(this.dir, config, opts);
    this.daemons.push(d);
    this.cleanups.push(() => d.stop(2000));
    return d;
  }

  /** The last lines of every daemon this harness started (appended to timeout errors for diagnosis). */
  diag(lines = 25): string {
    return this.daemons.map((d, i) => `--- daemon #${i + 1} (${d.running ? 'running' : `exited ${JSON.stringify(d.proc.exit)}`}):\n`
      + d.proc.lines.filter((l) => !l.includes('"configuration loaded"')).slice(-lines).join('\n')).join('\n');
  }

  /** Runs `p`; if it rejects, the error message gets the daemons' output tails. */
  async explain<T>(p: Promise<T>): Promise<T> {
    try {
      return await p;
    } catch (e) {
      throw new Error(`${(e as Error).message}\n${this.diag()}`, { cause: e });
    }
  }

  topic(...parts: string[]): string { return [this.prefix, ...parts].join('/'); }

  async close(): Promise<void> {
    for (const c of this.cleanups.reverse()) {
      try { await c(); } catch { /* best effort: keep tearing down */ }
    }
    this.tmp.remove();
  }
}

export interface ResultMsg {
  camera: string; seq: number; capturedAt: number; score: number; rawScore: number; verdict: 'ok' | 'ng';
  latencyMs: number; model: { name: string; version: string };
}
export interface CameraStatus {
  camera: string; state: 'connecting' | 'streaming' | 'stalled' | 'frozen' | 'failed' | 'stopped'; fps: number;
  captured: number; processed: number; dropped: number; repeated: number; provider: string; model: { name: string; version: string }; error?: string;
  since: number;
}
