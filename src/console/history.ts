/**
 * Per-camera memory of the console, all bounded: the score trend (a time window of numbers), the last N NG frames
 * (frame + a copy of the anomaly map) and, only while someone watches the live view, the latest frame. Overlays are
 * rendered from these on request, never on the frame path.
 */
import type { ConsoleResult, ResultModel } from './types';

export interface NgEntry {
  /** Unique within the daemon's run (URL key). */
  id: number;
  camera: string;
  seq: number;
  capturedAt: number;
  score: number;
  rawScore: number;
  frame: Buffer;
  map: Float32Array;
  /** The model that scored it (frame geometry, normalisation). */
  model: ResultModel;
  /** Where "false reject" saved it, once marked. */
  savedTo?: string;
}

export interface LatestFrame {
  seq: number;
  capturedAt: number;
  score: number;
  rawScore: number;
  verdict: 'ok' | 'ng';
  frame: Buffer;
  map: Float32Array;
  model: ResultModel;
}

/** How long after the last live-view request frames keep being copied for it. */
export const WATCH_GRACE_MS = 5000;
/** Trend capacity per camera: trendSeconds at up to this many frames per second. */
const TREND_MAX_FPS = 30;

/** A ring of (time, score) pairs in typed arrays: no allocation per frame. */
export class ScoreTrend {
  private readonly t: Float64Array;
  private readonly s: Float32Array;
  private next = 0;
  private size = 0;

  constructor(readonly capacity: number) {
    this.t = new Float64Array(capacity);
    this.s = new Float32Array(capacity);
  }

  push(t: number, score: number): void {
    this.t[this.next] = t;
    this.s[this.next] = score;
    this.next = (this.next + 1) % this.capacity;
    if (this.size < this.capacity) this.size++;
  }

  /** Points with t >= since, oldest first. */
  since(since: number): { t: number[]; s: number[] } {
    const t: number[] = [];
    const s: number[] = [];
    const start = (this.next - this.size + this.capacity) % this.capacity;
    for (let k = 0; k < this.size; k++) {
      const i = (start + k) % this.capacity;
      if (this.t[i] >= since) {
        t.push(this.t[i]);
        s.push(Math.round(this.s[i] * 10000) / 10000);
      }
    }
    return { t, s };
  }
}

export class CameraHistory {
  readonly trend: ScoreTrend;
  readonly ng: NgEntry[] = [];
  latest: LatestFrame | null = null;
  ngTotal = 0;
  private watchedUntil = 0;

  constructor(
    readonly camera: string,
    private readonly ngHistory: number,
    trendSeconds: number,
  ) {
    this.trend = new ScoreTrend(Math.max(16, Math.min(100000, trendSeconds * TREND_MAX_FPS)));
  }

  /** Called by the live-view endpoint: keep copying frames for WATCH_GRACE_MS. */
  watch(now = Date.now()): void {
    this.watchedUntil = now + WATCH_GRACE_MS;
  }

  watched(now = Date.now()): boolean {
    return now < this.watchedUntil;
  }

  /** Synchronous and cheap unless someone watches or the frame is NG (then one map copy, H*W floats). */
  record(r: ConsoleResult, nextId: () => number, now = Date.now()): NgEntry | null {
    this.trend.push(r.capturedAt, r.score);
    if (this.watched(now)) {
      this.latest = { seq: r.seq, capturedAt: r.capturedAt, score: r.score, rawScore: r.rawScore, verdict: r.verdict, frame: r.frame, map: new Float32Array(r.map), model: r.model };
    } else {
      this.latest = null; // nobody looks: hold no frame
    }
    if (r.verdict !== 'ng' || this.ngHistory === 0) return null;
    this.ngTotal++;
    const map = this.latest && this.latest.seq === r.seq ? this.latest.map : new Float32Array(r.map);
    const e: NgEntry = { id: nextId(), camera: r.camera, seq: r.seq, capturedAt: r.capturedAt, score: r.score, rawScore: r.rawScore, frame: r.frame, map, model: r.model };
    this.ng.push(e);
    if (this.ng.length > this.ngHistory) this.ng.shift();
    return e;
  }

  findNg(id: number): NgEntry | undefined {
    return this.ng.find((e) => e.id === id);
  }
}
