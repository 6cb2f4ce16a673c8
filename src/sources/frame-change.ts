/**
 * Has the camera's image changed? A frame byte-identical to the camera's previous distinct frame is a repeat: an
 * encoder or sensor that keeps sending its last image, or a frozen camera. Repeats are never scored (their result
 * would be the previous one again, and a reject actuator must not fire twice for one image); an image unchanged
 * for longer than the frozen timeout makes the camera `frozen`.
 *
 * The comparison is exact (Buffer.equals: memcmp over the whole frame, stopping at the first differing byte), not
 * a hash over a sample: it cannot miss a change confined to unsampled pixels (a small defect in an otherwise static
 * scene) and costs about as little (bench/daemon/frame-change.ts: microseconds per frame at model size). The price
 * is one frame of memory per camera, which the camera keeps anyway until the pipeline has taken it.
 */
export class ChangeDetector {
  private last: Buffer | null = null;
  /** When the image last changed (or the first frame arrived); 0 before any frame. */
  changedAt = 0;
  /** Repeats since the last change. */
  streak = 0;

  /** True when `frame` differs from the previous distinct frame (or is the first); false for a repeat. */
  check(frame: Buffer, now: number): boolean {
    if (this.last !== null && this.last.length === frame.length && this.last.equals(frame)) {
      this.streak++;
      return false;
    }
    this.last = frame;
    this.changedAt = now;
    this.streak = 0;
    return true;
  }

  /** How long the image has been unchanged (0 before any frame). */
  unchangedFor(now: number): number {
    return this.changedAt === 0 ? 0 : now - this.changedAt;
  }
}
