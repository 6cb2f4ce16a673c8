/**
 * Has the camera's image changed? A frame that shows the same picture as the camera's last handed-on (scored)
 * frame is a repeat: an encoder or sensor that keeps sending its last image, or a frozen camera. Repeats are never
 * scored (their result would be the previous one again, and a reject actuator must not fire twice for one image);
 * an image unchanged for longer than the frozen timeout makes the camera `frozen`.
 *
 * "Same picture" cannot mean byte-identical: a lossy encoder (H.264/H.265) re-encoding one still image decodes to
 * a repeating cycle of slightly different frames (rate control, keyframe vs. predicted frames). So each frame is
 * reduced to a grey thumbnail of block means (THUMB_BLOCKS x THUMB_BLOCKS) and compared with the thumbnail of the
 * last scored frame: the frame is a repeat when no block mean moved by more than `tolerance` grey levels. Block
 * means average the codec's pixel noise away, while the maximum over blocks still sees a change confined to one
 * region (a part arriving, a defect in an otherwise static scene). Comparing with the last SCORED frame, not the
 * previous one, means a slow drift adds up until it counts as a change. Tolerance 0 keeps the exact comparison
 * (Buffer.equals) for lossless streams. The tolerance and its measured margins: docs/daemon.md, "Frozen cameras";
 * bench/daemon/frozen-tolerance.ts.
 */

/** Blocks per side of the thumbnail (fewer when the frame is smaller). */
export const THUMB_BLOCKS = 32;

/** A grey thumbnail of an RGB frame: block means of (R + 2G + B) / 4, row-major, `side` x `side`. */
export interface Thumbnail {
  side: number;
  means: Float32Array;
}

/** Precomputed block boundaries for one frame size (the camera's frames all have the model's size). */
export class Thumbnailer {
  /** First column of each block column, plus the width at the end. */
  private readonly colStart: Uint32Array;
  private readonly rowBlock: Uint16Array;
  private readonly count: Float32Array;
  private readonly sums: Float64Array;
  readonly side: number;

  constructor(readonly width: number, readonly height: number, blocks = THUMB_BLOCKS) {
    if (!(width > 0 && height > 0)) throw new Error(`thumbnail: bad frame size ${width}x${height}`);
    const side = Math.max(1, Math.min(blocks, width, height));
    this.side = side;
    this.colStart = Uint32Array.from({ length: side + 1 }, (_, b) => Math.ceil((b * width) / side));
    this.rowBlock = Uint16Array.from({ length: height }, (_, y) => Math.floor((y * side) / height));
    this.count = new Float32Array(side * side);
    for (let y = 0; y < height; y++) {
      for (let b = 0; b < side; b++) this.count[this.rowBlock[y] * side + b] += this.colStart[b + 1] - this.colStart[b];
    }
    this.sums = new Float64Array(side * side);
  }

  /** The frame's thumbnail; `frame` is packed RGB of width x height. */
  of(frame: Buffer): Thumbnail {
    const { width, height, side, colStart, rowBlock, sums } = this;
    if (frame.length !== width * height * 3) throw new Error(`thumbnail: frame of ${frame.length} bytes, expected ${width}x${height}x3`);
    sums.fill(0);
    // One integer run per block and row (no per-pixel lookups): this runs on every RTSP frame.
    for (let y = 0; y < height; y++) {
      const row = rowBlock[y] * side;
      const base = y * width * 3;
      for (let b = 0; b < side; b++) {
        let acc = 0;
        for (let j = base + colStart[b] * 3, end = base + colStart[b + 1] * 3; j < end; j += 3) acc += frame[j] + 2 * frame[j + 1] + frame[j + 2];
        sums[row + b] += acc;
      }
    }
    const means = new Float32Array(side * side);
    for (let b = 0; b < means.length; b++) means[b] = sums[b] / (4 * this.count[b]);
    return { side, means };
  }
}

/** How far apart two thumbnails are, in grey levels (0-255): the largest block difference and the mean one. */
export function thumbDistance(a: Thumbnail, b: Thumbnail): { max: number; mean: number } {
  if (a.side !== b.side) return { max: 255, mean: 255 };
  let max = 0;
  let sum = 0;
  for (let i = 0; i < a.means.length; i++) {
    const d = Math.abs(a.means[i] - b.means[i]);
    sum += d;
    if (d > max) max = d;
  }
  return { max, mean: sum / a.means.length };
}

export class ChangeDetector {
  private last: Buffer | null = null;
  private lastThumb: Thumbnail | null = null;
  private readonly thumbs: Thumbnailer | null;
  /** When the image last changed (or the first frame arrived); 0 before any frame. */
  changedAt = 0;
  /** Repeats since the last change. */
  streak = 0;
  /** The latest frame's distance from the last scored one (grey levels; 0 with tolerance 0 or before a frame). */
  lastDistance = 0;

  /**
   * `tolerance`: largest block-mean difference (grey levels) that still counts as the same picture; 0 = only
   * byte-identical frames are repeats. `width`/`height`: the frames' size (needed when tolerance > 0).
   */
  constructor(readonly tolerance = 0, width = 0, height = 0) {
    if (!(tolerance >= 0)) throw new Error(`frozen tolerance must be >= 0, got ${tolerance}`);
    this.thumbs = tolerance > 0 ? new Thumbnailer(width, height) : null;
  }

  /** True when `frame` differs from the last scored frame (or is the first); false for a repeat. */
  check(frame: Buffer, now: number): boolean {
    if (this.thumbs) {
      const t = this.thumbs.of(frame);
      this.lastDistance = this.lastThumb ? thumbDistance(t, this.lastThumb).max : 0;
      if (this.lastThumb !== null && this.lastDistance <= this.tolerance) return this.repeat();
      this.lastThumb = t;
    } else {
      if (this.last !== null && this.last.length === frame.length && this.last.equals(frame)) return this.repeat();
      this.last = frame;
    }
    this.changedAt = now;
    this.streak = 0;
    return true;
  }

  private repeat(): false {
    this.streak++;
    return false;
  }

  /** How long the image has been unchanged (0 before any frame). */
  unchangedFor(now: number): number {
    return this.changedAt === 0 ? 0 : now - this.changedAt;
  }
}
