/**
 * Drift of a camera's good parts (docs/daemon.md, "Drift"): over the last N frames judged OK, the share whose raw
 * score lies at or above the model's drift reference (model.json threshold.details.drift_reference: a quantile of the
 * good calibration scores; older models: threshold.raw), next to the share expected of good parts. Crossing the warning level is reported once, and recovery (below half of it) once.
 */

export interface DriftOptions {
  /** OK frames kept per camera. */
  window: number;
  /** Share above the calibration quantile at which the camera counts as drifting (full window only). */
  warnShare: number;
}

export const DEFAULT_DRIFT: DriftOptions = { window: 500, warnShare: 0.25 };

/** The model's side of the comparison: its calibration quantile and the share of normal scores expected above it. */
export interface DriftReference {
  raw: number;
  expectedShare: number | null;
}

export interface DriftState {
  /** Share of the window above the reference; null while the window is empty. */
  share: number | null;
  expectedShare: number | null;
  reference: number;
  frames: number;
  window: number;
  warnShare: number;
  drifting: boolean;
}

export type DriftChange = 'drifting' | 'recovered' | null;

export class DriftWindow {
  private readonly above: Uint8Array;
  private next = 0;
  private count = 0;
  private nAbove = 0;
  private ref: DriftReference | null = null;
  drifting = false;

  constructor(private readonly opts: DriftOptions = DEFAULT_DRIFT) {
    this.above = new Uint8Array(opts.window);
  }

  /**
   * One OK frame's raw score. Another reference (the camera got another model) starts the window afresh: scores of
   * different models are not comparable. Returns the crossing of the warning level, if this frame made one.
   */
  add(raw: number, ref: DriftReference): DriftChange {
    if (!this.ref || this.ref.raw !== ref.raw || this.ref.expectedShare !== ref.expectedShare) this.reset(ref);
    const a = raw >= ref.raw ? 1 : 0; // as the calibration counts its hold-out false rejects
    if (this.count === this.above.length) this.nAbove -= this.above[this.next];
    else this.count++;
    this.above[this.next] = a;
    this.nAbove += a;
    this.next = (this.next + 1) % this.above.length;
    // Judged on a full window only: a handful of frames after a start says nothing yet.
    if (this.count < this.above.length) return null;
    const share = this.nAbove / this.count;
    if (!this.drifting && share >= this.opts.warnShare) {
      this.drifting = true;
      return 'drifting';
    }
    if (this.drifting && share < this.opts.warnShare / 2) {
      this.drifting = false;
      return 'recovered';
    }
    return null;
  }

  reset(ref: DriftReference | null = this.ref): void {
    this.ref = ref;
    this.above.fill(0);
    this.next = 0;
    this.count = 0;
    this.nAbove = 0;
    this.drifting = false;
  }

  state(): DriftState | null {
    if (!this.ref) return null;
    return {
      share: this.count === 0 ? null : this.nAbove / this.count,
      expectedShare: this.ref.expectedShare,
      reference: this.ref.raw,
      frames: this.count,
      window: this.above.length,
      warnShare: this.opts.warnShare,
      drifting: this.drifting,
    };
  }
}
