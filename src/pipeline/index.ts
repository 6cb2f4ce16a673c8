/**
 * The frame path after ingest: newest-frame slot per camera -> one batch across cameras -> onnxruntime ->
 * normalized score + verdict -> result / reject / snapshot to the ResultSink (MQTT, or several outputs through
 * FanOutSink). One inference runs at a time; snapshots are rendered off the loop, at most two at once (more are
 * skipped and counted, never queued).
 */
import { Metrics } from '../health/metrics';
import { InferenceEngine } from '../infer/session';
import type { Logger } from '../log';
import { renderSnapshot } from '../publish/snapshot';
import { normalize, verdict } from '../score/normalize';
import type { FrameSource, ResultSink } from './interfaces';
import { NewestFrameSlots, PendingFrame } from './slots';

export { isCameraStatusSink } from './interfaces';
export type { CameraStatusSink, FrameListener, FrameSource, ResultSink, SnapshotProperties } from './interfaces';
export { FanOutSink } from './fan-out';
import type { ConsoleResult } from '../console/types'; // console (issue 9)

export interface PipelineOptions {
  rejectDeadlineMs: number;
  snapshot: { onNg: boolean; everyN: number; format: 'jpeg' | 'png'; maxBytes: number };
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
  private readonly recentRunMs: number[] = [];
  private readonly unsubscribe = new Map<string, () => void>();
  private stopping = false;
  private loopDone: Promise<void> | null = null;
  private snapshotsInFlight = new Set<Promise<void>>();
  /** Operator console (issue 9): sees every scored frame synchronously; the map view is valid only during the call. */
  resultTap: ((r: ConsoleResult) => void) | null = null;

  constructor(
    private readonly engine: InferenceEngine,
    private readonly sink: ResultSink,
    private readonly metrics: Metrics,
    private readonly opts: PipelineOptions,
    private readonly log: Logger,
  ) {}

  counter(camera: string): CameraCounters {
    let c = this.counters.get(camera);
    if (!c) {
      c = { captured: 0, processed: 0, dropped: 0, ng: 0 };
      this.counters.set(camera, c);
    }
    return c;
  }

  addCamera(cam: FrameSource): void {
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
  }

  /** Median session.run time over the last 50 batches (ms). */
  inferenceP50(): number {
    if (this.recentRunMs.length === 0) return 0;
    const s = [...this.recentRunMs].sort((a, b) => a - b);
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
      const batch = this.slots.take(this.engine.maxBatch);
      if (batch.length === 0) continue;
      await this.processBatch(batch);
    }
  }

  private async processBatch(batch: PendingFrame[]): Promise<void> {
    let out;
    try {
      out = await this.engine.run(batch.map((f) => f.frame));
    } catch (err) {
      this.inferenceErrors++;
      this.log.error({ err: (err as Error).message, batch: batch.length }, 'inference failed; frames skipped');
      return;
    }
    this.batches++;
    this.recentRunMs.push(out.runMs);
    if (this.recentRunMs.length > 50) this.recentRunMs.shift();
    this.metrics.inferenceSeconds.observe({ batch: String(batch.length) }, out.runMs / 1000);
    const m = this.engine.manifest;
    const model = { name: m.name, version: m.version };
    const hw = m.height * m.width;
    const now = Date.now();
    this.lastProcessedAt = now;
    batch.forEach((f, i) => {
      const rawScore = out.scores[i];
      const score = normalize(rawScore, m.normalization);
      const v = verdict(score);
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
        });
        if (!ok) this.metrics.mqttUnsent.inc({ kind: 'reject' });
      }
      this.resultTap?.({ camera: f.camera, seq: f.seq, capturedAt: f.capturedAt, score, rawScore, verdict: v, frame: f.frame, map: out.maps.subarray(i * hw, (i + 1) * hw) }); // console (issue 9)
      const s = this.opts.snapshot;
      if ((v === 'ng' && s.onNg) || (s.everyN > 0 && c.processed % s.everyN === 0)) {
        this.snapshot(f, out.maps.subarray(i * hw, (i + 1) * hw), score, v);
      }
    });
  }

  private snapshot(f: PendingFrame, mapView: Float32Array, score: number, v: string): void {
    if (this.snapshotsInFlight.size >= MAX_SNAPSHOTS_IN_FLIGHT) {
      this.metrics.snapshotsSkipped.inc({ reason: 'busy' });
      return;
    }
    if (!this.sink.connected) {
      this.metrics.mqttUnsent.inc({ kind: 'snapshot' });
      return;
    }
    const m = this.engine.manifest;
    const map = new Float32Array(mapView); // the output tensor is not ours to keep
    const p = (async () => {
      try {
        const snap = await renderSnapshot(
          { frame: f.frame, map, width: m.width, height: m.height, normalization: m.normalization },
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
