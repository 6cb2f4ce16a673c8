/**
 * The console's state and actions behind the HTTP routes and MQTT commands: per-camera history and capture writer,
 * lazily rendered overlays (at most two renders at once, the live one shared by every viewer), false-reject saves.
 */
import type { ModelManifest } from '../infer/manifest';
import type { Logger } from '../log';
import { ControlGate } from './auth';
import { CaptureError, CaptureRequest, CaptureStatus, CaptureWriter } from './capture';
import { CameraHistory, NgEntry } from './history';
import { overlayJpeg } from '../render/overlay-jpeg';
import type { CommandReply } from './mqtt-commands';
import { ReviewError, saveFalseReject } from './review';
import { ActiveThreshold, ThresholdError } from '../score/threshold';
import type { ConsoleModel, ConsoleOptions, ConsoleResult, ConsoleSources, ResultModel } from './types';

/** A refused or failed action: HTTP status + a reason a person can act on. */
export class ConsoleError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

export interface LiveImage {
  jpeg: Buffer;
  seq: number;
  capturedAt: number;
  score: number;
  /** The model's own score and threshold: the normalised one is clamped to [0, 1] (docs/console.md, "Scores"). */
  rawScore: number;
  rawThreshold: number;
  verdict: string;
}

const MAX_RENDERS = 2;

/** MQTT commands that only read. Every other action, known or added later, is control: commandAuth() first. */
const READ_ACTIONS: ReadonlySet<string> = new Set(['capture-status']);

const METHOD_NAMES: Record<string, string> = { stpm: 'ET-STPM', membank: 'memory bank' };

/** "memory bank, threshold order-statistic, teacher fine-tune none" from the model's manifest (docs/model-format.md). */
export function describeMethod(m: Pick<ModelManifest, 'method' | 'thresholdMethod' | 'finetune'>): string {
  const parts = [METHOD_NAMES[m.method] ?? m.method];
  if (m.thresholdMethod !== null) parts.push(`threshold ${m.thresholdMethod}`);
  if (m.finetune !== null) parts.push(`teacher fine-tune ${m.finetune}`);
  return parts.join(', ');
}

export class ConsoleHub {
  readonly gate: ControlGate;
  private readonly histories = new Map<string, CameraHistory>();
  private readonly captures = new Map<string, CaptureWriter>();
  private ngIds = 0;
  private renders = 0;
  private readonly renderWaiters: (() => void)[] = [];
  private readonly liveWaiters: (() => void)[] = [];
  private readonly liveRenders = new Map<string, { seq: number; image: Promise<LiveImage> }>();
  private tapErrors = 0;
  readonly startedAt = Date.now();

  constructor(
    readonly opts: ConsoleOptions,
    readonly model: ConsoleModel,
    private readonly sources: ConsoleSources,
    private readonly log: Logger,
  ) {
    this.gate = new ControlGate(opts.host, opts.token);
  }

  private history(camera: string): CameraHistory {
    let h = this.histories.get(camera);
    if (!h) {
      h = new CameraHistory(camera, this.opts.ngHistory, this.opts.trendSeconds);
      this.histories.set(camera, h);
    }
    return h;
  }

  private capture(camera: string): CaptureWriter {
    let c = this.captures.get(camera);
    if (!c) {
      c = new CaptureWriter(camera, this.opts.capture, this.log);
      this.captures.set(camera, c);
    }
    return c;
  }

  /** The pipeline's tap: synchronous, never throws into the frame path. */
  onResult(r: ConsoleResult): void {
    try {
      this.history(r.camera).record(r, () => ++this.ngIds);
      this.captures.get(r.camera)?.offer(r);
    } catch (err) {
      if (this.tapErrors++ === 0) this.log.error({ camera: r.camera, err: (err as Error).message }, 'console: recording a result failed (logged once)');
    }
  }

  cameraIds(): string[] {
    return this.sources.cameras().map((c) => c.camera);
  }

  /** 404 unless the camera is configured now. */
  requireCamera(camera: string): void {
    if (!this.cameraIds().includes(camera)) throw new ConsoleError(`unknown camera "${camera}" (cameras: ${this.cameraIds().join(', ') || 'none'})`, 404);
  }

  state(): Record<string, unknown> {
    const health = this.sources.health();
    return {
      health,
      uptimeS: Math.round((Date.now() - this.startedAt) / 1000),
      model: { name: this.model.name, version: this.model.version, method: this.model.method, width: this.model.width, height: this.model.height },
      cameras: this.sources.cameras().map((c) => ({ ...c, capture: this.capture(c.camera).status(), ngKept: this.histories.get(c.camera)?.ng.length ?? 0 })),
      control: this.gate.mode,
      trendSeconds: this.opts.trendSeconds,
      threshold: 0.5,
    };
  }

  /** At most MAX_RENDERS at once; live-view renders go before NG thumbnails (a page opening loads up to ngHistory). */
  private async withRender<T>(live: boolean, fn: () => Promise<T>): Promise<T> {
    while (this.renders >= MAX_RENDERS) await new Promise<void>((res) => (live ? this.liveWaiters : this.renderWaiters).push(res));
    this.renders++;
    try {
      return await fn();
    } finally {
      this.renders--;
      (this.liveWaiters.shift() ?? this.renderWaiters.shift())?.();
    }
  }

  /** `m`: the model that scored the frame (each camera may have its own; docs/configuration.md). */
  private overlayJpeg(frame: Buffer, map: Float32Array, m: ResultModel, live = false): Promise<Buffer> {
    return this.withRender(live, () => overlayJpeg(frame, map, m.width, m.height, m.normalization));
  }

  /** The latest frame with its overlay; null while no frame arrived since someone started watching. */
  async live(camera: string): Promise<LiveImage | null> {
    this.requireCamera(camera);
    const h = this.history(camera);
    h.watch();
    const f = h.latest;
    if (!f) return null;
    const cached = this.liveRenders.get(camera);
    if (cached && cached.seq === f.seq) return cached.image;
    const image = this.overlayJpeg(f.frame, f.map, f.model, true).then((jpeg) => ({
      jpeg, seq: f.seq, capturedAt: f.capturedAt, score: f.score, rawScore: f.rawScore, rawThreshold: f.model.normalization.threshold, verdict: f.verdict,
    }));
    this.liveRenders.set(camera, { seq: f.seq, image });
    image.catch(() => this.liveRenders.delete(camera));
    return image;
  }

  trend(camera: string, seconds: number): { threshold: number; t: number[]; s: number[] } {
    this.requireCamera(camera);
    return { threshold: 0.5, ...this.history(camera).trend.since(Date.now() - seconds * 1000) };
  }

  /**
   * The NG frames kept, newest first, or by raw score (highest first): normalised scores of clear defects all
   * clamp at 1.000, the raw score still ranks them.
   */
  ngList(camera: string, order: 'newest' | 'raw' = 'newest'): Array<Record<string, unknown>> {
    this.requireCamera(camera);
    const h = this.history(camera);
    const items = h.ng
      .map((e) => ({ id: e.id, seq: e.seq, capturedAt: e.capturedAt, score: e.score, rawScore: e.rawScore, rawThreshold: e.model.normalization.threshold, savedTo: e.savedTo ?? null }))
      .reverse();
    if (order === 'raw') items.sort((a, b) => b.rawScore - a.rawScore || b.id - a.id);
    return items;
  }

  private ngEntry(camera: string, id: number): NgEntry {
    this.requireCamera(camera);
    const e = this.history(camera).findNg(id);
    if (!e) throw new ConsoleError(`NG frame ${id} of camera "${camera}" is no longer kept (only the last ${this.opts.ngHistory})`, 404);
    return e;
  }

  async ngImage(camera: string, id: number): Promise<Buffer> {
    const e = this.ngEntry(camera, id) as NgEntry & { jpeg?: Promise<Buffer> };
    e.jpeg ??= this.overlayJpeg(e.frame, e.map, e.model);
    e.jpeg.catch(() => (e.jpeg = undefined));
    return e.jpeg;
  }

  async markFalseReject(camera: string, id: number): Promise<{ savedTo: string; already: boolean }> {
    const e = this.ngEntry(camera, id);
    if (e.savedTo) return { savedTo: e.savedTo, already: true };
    try {
      e.savedTo = await saveFalseReject(this.opts.reviewDir, e);
    } catch (err) {
      if (err instanceof ReviewError) throw new ConsoleError(`false reject not saved: ${err.message}`, err.status);
      throw err;
    }
    this.log.info({ camera, seq: e.seq, score: e.score, file: e.savedTo }, 'NG frame marked as false reject');
    return { savedTo: e.savedTo, already: false };
  }

  async captureStart(camera: string, req: CaptureRequest): Promise<CaptureStatus> {
    this.requireCamera(camera);
    try {
      return await this.capture(camera).start(req);
    } catch (err) {
      if (err instanceof CaptureError) throw new ConsoleError(err.message, err.status);
      throw err;
    }
  }

  captureStop(camera: string): CaptureStatus {
    this.requireCamera(camera);
    return this.capture(camera).stop();
  }

  captureStatus(camera: string): CaptureStatus {
    this.requireCamera(camera);
    return this.capture(camera).status();
  }

  /** A run-time threshold override for a camera (null = back to config/model); `via` is logged. */
  setThreshold(camera: string, value: unknown, via: string): { camera: string; threshold: ActiveThreshold } {
    this.requireCamera(camera);
    const set = this.sources.setThreshold;
    if (!set) throw new ConsoleError('threshold changes are not offered by this daemon', 501);
    try {
      return { camera, threshold: set(camera, value, via) };
    } catch (err) {
      if (err instanceof ThresholdError) throw new ConsoleError(err.message, 400);
      throw err;
    }
  }

  /**
   * The control policy for an MQTT command, the same as for HTTP control (ControlGate.authorize): null = allowed,
   * else the refusal. `token` is the command's "token" field. docs/mqtt.md, "Commands".
   */
  commandAuth(action: string, token: unknown): string | null {
    if (READ_ACTIONS.has(action)) return null;
    if (token !== undefined && typeof token !== 'string') return '"token" must be a string (console.token)';
    const denied = this.gate.authorize(token, 'control commands need "token": "<console.token>" in the payload');
    return denied ? `MQTT control refused: ${denied.message}` : null;
  }

  /** MQTT command entry (mqtt-commands.ts). The "token" field is checked and removed before the action sees it. */
  async command(camera: string, action: string, withToken: Record<string, unknown>): Promise<CommandReply> {
    const { token, ...args } = withToken;
    const denied = this.commandAuth(action, token);
    if (denied) {
      this.log.warn({ camera, action, err: denied }, 'MQTT command refused');
      return { action, ok: false, error: denied };
    }
    try {
      if (action === 'capture-start') {
        const unknown = Object.keys(args).filter((k) => !['everyN', 'maxImages', 'maxBytes'].includes(k));
        if (unknown.length) throw new ConsoleError(`unknown field(s) ${unknown.join(', ')} (everyN, maxImages, maxBytes)`, 400);
        return { action, ok: true, capture: await this.captureStart(camera, args as CaptureRequest) };
      }
      if (action === 'capture-stop') return { action, ok: true, capture: this.captureStop(camera) };
      if (action === 'capture-status') return { action, ok: true, capture: this.captureStatus(camera) };
      if (action === 'threshold') {
        const unknown = Object.keys(args).filter((k) => k !== 'threshold');
        if (unknown.length) throw new ConsoleError(`unknown field(s) ${unknown.join(', ')} (threshold, token)`, 400);
        if (!('threshold' in args)) throw new ConsoleError('missing "threshold" (a raw score >= 0, or null for the configured/model threshold)', 400);
        return { action, ok: true, threshold: this.setThreshold(camera, args.threshold, 'mqtt').threshold };
      }
      throw new ConsoleError(`unknown action "${action}" (capture-start, capture-stop, capture-status, threshold)`, 400);
    } catch (err) {
      const msg = (err as Error).message;
      this.log.warn({ camera, action, err: msg }, 'MQTT command failed');
      return { action, ok: false, error: msg };
    }
  }

  /** Stops running captures and waits for their last write. */
  async close(): Promise<void> {
    for (const c of this.captures.values()) c.stop('daemon stopping');
    await Promise.all([...this.captures.values()].map((c) => c.idle()));
  }
}
