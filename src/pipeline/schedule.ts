/**
 * Which model runs next when frames of several models are pending (one inference at a time; docs/daemon.md,
 * "One batch per model"). Measured in bench/daemon/models.ts (bench/results/daemon-models.json):
 *
 * - round-robin (the default): models take turns in a fixed cycle, skipping those with nothing pending, so every
 *   model with work gets one batch per round whatever its cameras do: a camera waits at most one batch of every
 *   other model.
 * - oldest-first: the model whose oldest pending frame is the oldest. The same order as round-robin while each
 *   model's cameras fit in one batch (after a model runs, its cameras' frames are the newest); with more cameras
 *   than model.maxBatch on one model it can serve that model twice in a row.
 */
export type SchedulePolicy = 'round-robin' | 'oldest-first';

export interface PendingWork<M> {
  model: M;
  /** capturedAt of the model's oldest pending frame. */
  oldest: number;
}

export class ModelScheduler<M> {
  /** Models in the order they were first seen (the round-robin cycle). */
  private readonly order: M[] = [];
  private next = 0;

  constructor(readonly policy: SchedulePolicy = 'round-robin') {}

  /** Picks the model to run now among those with pending frames; null when none has any. */
  pick(work: readonly PendingWork<M>[]): M | null {
    if (work.length === 0) return null;
    for (const w of work) if (!this.order.includes(w.model)) this.order.push(w.model);
    if (this.policy === 'oldest-first') return work.reduce((a, b) => (b.oldest < a.oldest ? b : a)).model;
    const has = new Set(work.map((w) => w.model));
    for (let k = 0; k < this.order.length; k++) {
      const i = (this.next + k) % this.order.length;
      if (has.has(this.order[i])) {
        this.next = (i + 1) % this.order.length;
        return this.order[i];
      }
    }
    return null;
  }

  /** A model no camera uses any more leaves the cycle. */
  forget(model: M): void {
    const i = this.order.indexOf(model);
    if (i < 0) return;
    this.order.splice(i, 1);
    if (this.next > i) this.next--;
    if (this.next >= this.order.length) this.next = 0;
  }
}
