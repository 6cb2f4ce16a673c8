/** Exponential reconnect delay: min, 2*min, 4*min ... capped at max; reset once a source delivers again. */
export class Backoff {
  private attempt = 0;

  constructor(
    private readonly minMs: number,
    private readonly maxMs: number,
  ) {}

  next(): number {
    const d = Math.min(this.maxMs, this.minMs * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    return d;
  }

  reset(): void {
    this.attempt = 0;
  }
}
