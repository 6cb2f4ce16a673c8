/**
 * Cuts a raw byte stream (decoder stdout) into frames of exactly frameBytes bytes. Pipe chunks (64 KiB) do not
 * line up with frames, so bytes are copied into the frame being assembled; each completed frame is a new Buffer
 * that the caller may keep.
 */
export class FrameReader {
  private current: Buffer;
  private filled = 0;

  constructor(
    readonly frameBytes: number,
    private readonly onFrame: (frame: Buffer) => void,
  ) {
    if (!Number.isInteger(frameBytes) || frameBytes <= 0) throw new RangeError(`frameBytes must be a positive integer, got ${frameBytes}`);
    this.current = Buffer.allocUnsafe(frameBytes);
  }

  push(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length) {
      const n = Math.min(this.frameBytes - this.filled, chunk.length - off);
      chunk.copy(this.current, this.filled, off, off + n);
      this.filled += n;
      off += n;
      if (this.filled === this.frameBytes) {
        const frame = this.current;
        this.current = Buffer.allocUnsafe(this.frameBytes);
        this.filled = 0;
        this.onFrame(frame);
      }
    }
  }

  /** Bytes of an incomplete frame held back (dropped when the stream restarts). */
  get pending(): number {
    return this.filled;
  }

  reset(): void {
    this.filled = 0;
  }
}
