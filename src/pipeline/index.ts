/**
 * The frame path after ingest: newest-frame slot per camera -> one batch per model (the cameras that model scores,
 * models taking turns: schedule.ts) -> onnxruntime -> normalized score + verdict -> result / reject / snapshot to
 * the ResultSink (MQTT, or several outputs through FanOutSink). One inference runs at a time; snapshots are
 * rendered off the loop, at most two at once (more are skipped and counted, never queued).
 */
import { Metrics } from '../health/metrics';
import { InferenceEngine } from '../infer/session';
import type { Logger } from '../log';
import { renderSnapshot } from '../render/snapshot';
import { DEFAULT_DRIFT, DriftOptions, DriftState, DriftWindow } from '../score/drift';
import { Normalization, normalize, verdict } from '../score/normalize';
import { withThreshold } from '../score/threshold';
import type { FrameSource, ResultSink } from './interfaces';
import { ModelScheduler, SchedulePolicy } from './schedule';
import { NewestFrameSlots, PendingFrame } from './slots';

export type { CameraStatusSink, FrameListener, FrameSource, Output, OutputHealth, ResultSink, SnapshotProperties } from './interfaces';
export { FanOutSink } from './fan-out';
export type { SchedulePolicy } from './schedule';

export interface PipelineOptions {
  rejectDeadlineMs: number;
  snapshot: { onNg: boolean; everyN: number; format: 'jpeg' | 'png'; maxBytes: number };
  /** Which model runs next when several have frames pending (default round-robin; bench/daemon/models.ts). */
  schedule?: SchedulePolicy;
  /** Drift window of the OK frames per camera (docs/daemon.md, "Drift"); default DEFAULT_DRIFT. */
  drift?: DriftOptions;
}

export interface CameraCounters {
  captured: number;
  processed: number;
  dropped: number;
  ng: number;
}

const MAX_SNAPSHOTS_IN_FLIGHT = 2;

export class Pipeline {
  readonly slots = new NewestFrameSlots();
  readonly counters = new Map<string, CameraCounters>();
  lastProcessedAt = 0;
  batches = 0;
  inferenceErrors = 0;
  /** session.run times (ms) of the last 50 batches, per model. */
  private readonly recentRunMs = new Map<InferenceEngine, number[]>();
  private readonly unsubscribe = new Map<string, () => void>();
  /** The model each camera is scored by now. */
  private readonly models = new Map<string, InferenceEngine>();
  /** Raw-threshold overrides per camera (docs/configuration.md, "Threshold override"); absent = the model's. */
  private readonly thresholds = new Map<string, number>();
  private readonly drift = new Map<string, DriftWindow>();
  private readonly scheduler: ModelScheduler<InferenceEngine>;
  private running: { engine: InferenceEngine; done: Promise<void> } | null = null;
  private stopping = false;
  private loopDone: Promise<void> | null = null;
  private snapshotsInFlight = new Set<Promise<void>>();

  constructor(
    private readonly sink: ResultSink,
    private readonly metrics: Metrics,
    private readonly opts: PipelineOptions,
    private readonly log: Logger,
  ) {
    this.scheduler = new ModelScheduler(opts.schedule ?? 'round-robin');
  }

  counter(camera: string): CameraCounters {
    let c = this.counters.get(camera);
    if (!c) {
      c = { captured: 0, processed: 0, dropped: 0, ng: 0 };
      this.counters.set(camera, c);
    }
    return c;
  }

  /** Frames of `cam` are scored by `engine` (their size must be the model's input size). */
  addCamera(cam: FrameSource, engine: InferenceEngine): void {
    this.models.set(cam.id, engine);
    const w = new DriftWindow(this.opts.drift ?? DEFAULT_DRIFT);
    w.reset(engine.manifest.driftReference);
    this.drift.set(cam.id, w);
    const c = this.counter(cam.id);
    const onFrame = (frame: Buffer, capturedAt: number): void => {
      if (this.stopping) return;
      c.captured++;
      this.metrics.captured.inc({ camera: cam.id });
      const f: PendingFrame = { camera: cam.id, seq: cam.captured, capturedAt, frame };
      if (this.slots.put(f)) {
        c.dropped++;
        this.metrics.dropped.inc({ camera: cam.id });
      }
    };
    cam.on('frame', onFrame);
    this.unsubscribe.set(cam.id, () => cam.off('frame', onFrame));
  }

  removeCamera(id: string): void {
    this.unsubscribe.get(id)?.();
    this.unsubscribe.delete(id);
    this.slots.clear(id);
    this.thresholds.delete(id);
    this.drift.delete(id);
    const engine = this.models.get(id);
    this.models.delete(id);
    if (engine) this.forgetIfUnused(engine);
  }

  /**
   * A camera changes model without restarting its decoder (same input size: the caller checks). Its pending
   * frame, if any, is scored by the new model.
   */
  setModel(id: string, engine: InferenceEngine): void {
    const old = this.models.get(id);
    if (!old || old === engine) return;
    this.models.set(id, engine);
    this.drift.get(id)?.reset(engine.manifest.driftReference); // another model's scores: not comparable
    this.forgetIfUnused(old);
  }

  /** The raw threshold frames of `camera` are judged at from the next frame on; null = the model's own. */
  setThreshold(camera: string, raw: number | null): void {
    if (raw === null) this.thresholds.delete(camera);
    else this.thresholds.set(camera, raw);
  }

  /** The normalisation a camera's frames are scored with: its model's, re-centred on the override if any. */
  normalizationOf(camera: string, engine: InferenceEngine): Normalization {
    return withThreshold(engine.manifest.normalization, this.thresholds.get(camera));
  }

  /** The camera's drift window (null for an unknown camera). */
  driftOf(camera: string): DriftState | null {
    return this.drift.get(camera)?.state() ?? null;
  }

  modelOf(id: string): InferenceEngine | undefined {
    return this.models.get(id);
  }

  private forgetIfUnused(engine: InferenceEngine): void {
    if ([...this.models.values()].includes(engine)) return;
    this.scheduler.forget(engine);
    this.recentRunMs.delete(engine);
  }

  /** Median session.run time over the last 50 batches (ms): of one model, or of all of them together. */
  inferenceP50(engine?: InferenceEngine): number {
    const runs = engine ? this.recentRunMs.get(engine) ?? [] : [...this.recentRunMs.values()].flat();
    if (runs.length === 0) return 0;
    const s = [...runs].sort((a, b) => a - b);
    return s[Math.floor(s.length / 2)];
  }

  start(): void {
    this.loopDone ??= this.loop();
  }

  private async loop(): Promise<void> {
    while (!this.stopping) {
      await this.slots.wait();
      // One turn of the event loop before taking the batch. session.run blocks the loop (onnxruntime-node runs it
      // synchronously, after a setImmediate), so the decoders' pipes are read only between runs. Without this turn
      // the batch took the frame left over from the previous gap and the freshly buffered newer frame was read a
      // moment later, during onnxruntime's setImmediate, to wait through a whole run: frame-to-publish was about
      // two run times. Now the newest frame goes into the next run (bench/daemon/README.md, "Latency").
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (this.stopping) break;
      const engine = this.nextModel();
      if (!engine) continue;
      const batch = this.slots.take(engine.maxBatch, (camera) => this.models.get(camera) === engine);
      if (batch.length === 0) continue;
      const done = this.processBatch(engine, batch);
      this.running = { engine, done };
      await done;
      this.running = null;
    }
  }

  /** Resolves once no batch of `engine` is running (before its session is closed after a model swap). */
  async settled(engine: InferenceEngine): Promise<void> {
    while (this.running && this.running.engine === engine) await this.running.done;
  }

  /** The model to run now (schedule.ts); frames of cameras without a model are dropped (removed meanwhile). */
  private nextModel(): InferenceEngine | null {
    const oldest = new Map<InferenceEngine, number>();
    const orphans: string[] = [];
    for (const f of this.slots.pending()) {
      const e = this.models.get(f.camera);
      if (!e) orphans.push(f.camera);
      else if (!oldest.has(e) || f.capturedAt < (oldest.get(e) as number)) oldest.set(e, f.capturedAt);
    }
    for (const c of orphans) this.slots.clear(c);
    return this.scheduler.pick([...oldest].map(([model, t]) => ({ model, oldest: t })));
  }

  private async processBatch(engine: InferenceEngine, taken: PendingFrame[]): Promise<void> {
    // A frame decoded for another input size (model swapped between decode and now) cannot be scored by this one.
    const batch = taken.filter((f) => f.frame.length === engine.frameBytes);
    if (batch.length < taken.length) {
      this.log.warn({ model: engine.manifest.name, skipped: taken.filter((f) => f.frame.length !== engine.frameBytes).map((f) => f.camera) }, 'frame size does not match the camera\'s model; frame skipped');
      if (batch.length === 0) return;
    }
    const m = engine.manifest;
    let out;
    try {
      out = await engine.run(batch.map((f) => f.frame));
    } catch (err) {
      this.inferenceErrors++;
      this.log.error({ err: (err as Error).message, batch: batch.length, model: m.name }, 'inference failed; frames skipped');
      return;
    }
    this.batches++;
    let recent = this.recentRunMs.get(engine);
    if (!recent) this.recentRunMs.set(engine, (recent = []));
    recent.push(out.runMs);
    if (recent.length > 50) recent.shift();
    this.metrics.inferenceSeconds.observe({ batch: String(batch.length), model: m.name, version: m.version }, out.runMs / 1000);
    const model = { name: m.name, version: m.version };
    const hw = m.height * m.width;
    const now = Date.now();
    this.lastProcessedAt = now;
    batch.forEach((f, i) => {
      const rawScore = out.scores[i];
      const normalization = this.normalizationOf(f.camera, engine);
      const score = normalize(rawScore, normalization);
      const v = verdict(score);
      if (v === 'ok') this.recordOk(f.camera, rawScore, engine);
      const c = this.counter(f.camera);
      c.processed++;
      if (v === 'ng') c.ng++;
      this.metrics.processed.inc({ camera: f.camera });
      this.metrics.verdicts.inc({ camera: f.camera, verdict: v });
      const latencyMs = Date.now() - f.capturedAt;
      const sent = this.sink.publishResult({ camera: f.camera, seq: f.seq, capturedAt: f.capturedAt, score, rawScore, verdict: v, latencyMs, model });
      if (sent) this.metrics.frameToPublishSeconds.observe(latencyMs / 1000);
      else this.metrics.mqttUnsent.inc({ kind: 'result' });
      if (v === 'ng') {
        const ok = this.sink.publishReject({
          camera: f.camera,
          seq: f.seq,
          capturedAt: f.capturedAt,
          deadline: f.capturedAt + this.opts.rejectDeadlineMs,
          score,
          model,
        });
        if (!ok) this.metrics.mqttUnsent.inc({ kind: 'reject' });
      }
      this.sink.scoredFrame?.({ camera: f.camera, seq: f.seq, capturedAt: f.capturedAt, score, rawScore, verdict: v, frame: f.frame, map: out.maps.subarray(i * hw, (i + 1) * hw),
        model: { name: m.name, version: m.version, width: m.width, height: m.height, normalization } });
      const s = this.opts.snapshot;
      if ((v === 'ng' && s.onNg) || (s.everyN > 0 && c.processed % s.everyN === 0)) {
        this.snapshot(engine, f, out.maps.subarray(i * hw, (i + 1) * hw), score, v, normalization);
      }
    });
  }

  /** An OK frame into the camera's drift window; a crossing of the warning level is logged once (docs/daemon.md, "Drift"). */
  private recordOk(camera: string, raw: number, engine: InferenceEngine): void {
    const w = this.drift.get(camera);
    if (!w) return;
    const change = w.add(raw, engine.manifest.driftReference);
    if (change === null) return;
    const d = w.state() as DriftState;
    const fields = { camera, share: d.share, expectedShare: d.expectedShare, reference: d.reference, window: d.window, warnShare: d.warnShare };
    if (change === 'drifting') this.log.warn(fields, 'drift: OK parts score above the model\'s calibration quantile far more often than expected; recalibrate (docs/commissioning.md, "Recalibrate")');
    else this.log.info(fields, 'drift: recovered');
  }

  private snapshot(engine: InferenceEngine, f: PendingFrame, mapView: Float32Array, score: number, v: string, normalization: Normalization): void {
    if (this.snapshotsInFlight.size >= MAX_SNAPSHOTS_IN_FLIGHT) {
      this.metrics.snapshotsSkipped.inc({ reason: 'busy' });
      return;
    }
    if (!this.sink.connected) {
      this.metrics.mqttUnsent.inc({ kind: 'snapshot' });
      return;
    }
    const m = engine.manifest;
    const map = new Float32Array(mapView); // the output tensor is not ours to keep
    const p = (async () => {
      try {
        const snap = await renderSnapshot(
          { frame: f.frame, map, width: m.width, height: m.height, normalization },
          { format: this.opts.snapshot.format, maxBytes: this.opts.snapshot.maxBytes },
        );
        if (!snap) {
          this.metrics.snapshotsSkipped.inc({ reason: 'too_large' });
          this.log.warn({ camera: f.camera, seq: f.seq, maxBytes: this.opts.snapshot.maxBytes }, 'snapshot does not fit snapshot.maxBytes even when shrunk; skipped');
          return;
        }
        const sent = this.sink.publishSnapshot(f.camera, snap.data, snap.contentType, {
          camera: f.camera,
          seq: String(f.seq),
          score: score.toFixed(4),
          verdict: v,
          model: m.name,
          modelVersion: m.version,
        });
        if (!sent) this.metrics.mqttUnsent.inc({ kind: 'snapshot' });
      } catch (err) {
        this.log.warn({ camera: f.camera, err: (err as Error).message }, 'snapshot rendering failed');
      }
    })();
    this.snapshotsInFlight.add(p);
    void p.finally(() => this.snapshotsInFlight.delete(p));
  }

  /** Stops taking frames; resolves after the batch in flight (and its snapshots) is published. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.slots.wake();
    await this.loopDone;
    await Promise.all([...this.snapshotsInFlight]);
  }
}

