/**
 * Backpressure: each camera has one slot holding its newest unprocessed frame. A newer frame replaces an
 * unprocessed one (counted as dropped), so memory stays at one frame per camera however slow inference is.
 */
export interface PendingFrame {
  camera: string;
  seq: number;
  capturedAt: number;
  frame: Buffer;
}

export class NewestFrameSlots {
  private readonly slots = new Map<string, PendingFrame>();
  private waiter: (() => void) | null = null;
  readonly dropped = new Map<string, number>();

  /** Returns true when an unprocessed frame was replaced (dropped). */
  put(f: PendingFrame): boolean {
    const replaced = this.slots.has(f.camera);
    if (replaced) this.dropped.set(f.camera, (this.dropped.get(f.camera) ?? 0) + 1);
    this.slots.set(f.camera, f);
    const w = this.waiter;
    this.waiter = null;
    w?.();
    return replaced;
  }

  get size(): number {
    return this.slots.size;
  }

  /**
   * Takes up to max frames, oldest capture first (so no camera starves when there are more cameras than max);
   * with `which`, only frames of the cameras it accepts (one model's cameras).
   */
  take(max: number, which?: (camera: string) => boolean): PendingFrame[] {
    const all = [...this.slots.values()]
      .filter((f) => !which || which(f.camera))
      .sort((a, b) => a.capturedAt - b.capturedAt)
      .slice(0, max);
    for (const f of all) this.slots.delete(f.camera);
    return all;
  }

  /** The pending frames, unordered (the scheduler looks at which models have work and how old it is). */
  pending(): IterableIterator<PendingFrame> {
    return this.slots.values();
  }

  /** Forgets a camera's pending frame (camera removed). */
  clear(camera: string): void {
    this.slots.delete(camera);
  }

  /** Resolves when at least one frame is pending (at once if one already is) or when wake() is called. */
  wait(): Promise<void> {
    if (this.slots.size > 0) return Promise.resolve();
    return new Promise((res) => {
      const prev = this.waiter;
      this.waiter = () => {
        prev?.();
        res();
      };
    });
  }

  wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }
}
