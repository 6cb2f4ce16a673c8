/**
 * Packs frames into the model's uint8 [N,H,W,3] input without per-pixel JavaScript: a single frame is used in
 * place, several are copied with one TypedArray.set() each into a buffer allocated once for maxBatch frames.
 */
export class FrameBatcher {
  readonly frameBytes: number;
  private readonly staging: Uint8Array;

  constructor(height: number, width: number, readonly maxBatch: number) {
    this.frameBytes = height * width * 3;
    this.staging = new Uint8Array(this.frameBytes * maxBatch);
  }

  /** The returned view is only valid until the next pack() (callers run one batch at a time). */
  pack(frames: Buffer[]): Uint8Array {
    if (frames.length === 0 || frames.length > this.maxBatch) {
      throw new RangeError(`batch of ${frames.length} frames, expected 1..${this.maxBatch}`);
    }
    for (const f of frames) {
      if (f.length !== this.frameBytes) throw new RangeError(`frame of ${f.length} bytes, expected ${this.frameBytes}`);
    }
    if (frames.length === 1) {
      const f = frames[0];
      return new Uint8Array(f.buffer, f.byteOffset, f.length);
    }
    frames.forEach((f, i) => this.staging.set(f, i * this.frameBytes));
    return this.staging.subarray(0, frames.length * this.frameBytes);
  }
}
