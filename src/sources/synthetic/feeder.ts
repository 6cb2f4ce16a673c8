/**
 * The `synthetic://` camera: renders parts at a steady rate and writes them as raw RGB24 frames into the stdin of
 * the camera's ffmpeg process, which crops/scales them like any real stream. The generator (and its rng) belongs
 * to the camera, so a decoder restart continues the line instead of replaying it.
 */
import { Writable } from 'node:stream';
import { SyntheticParams } from '../url';
import { DefectKind, pickDefect, renderPart } from './part';
import { createRng, Rng } from './rng';

export class SyntheticLine {
  private readonly rng: Rng;
  parts = 0;
  defects = 0;

  constructor(readonly params: SyntheticParams) {
    this.rng = createRng(params.seed);
  }

  /** The next part on the belt: raw RGB frame and what is wrong with it (null = good). */
  async next(): Promise<{ rgb: Buffer; defect: DefectKind | null }> {
    const defect = pickDefect(this.rng, this.params.defectRate);
    const part = await renderPart(this.rng, this.params.size, defect);
    this.parts++;
    if (defect) this.defects++;
    return { rgb: part.rgb, defect };
  }
}

/** Writes frames at params.fps until stopped or the pipe closes. Slow rendering lowers the rate, never queues. */
export class SyntheticFeeder {
  private stopped = false;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly line: SyntheticLine,
    private readonly sink: Writable,
    private readonly onError: (err: Error) => void,
  ) {
    sink.on('error', (err: Error) => {
      // EPIPE when the decoder exits: the camera's exit handler reports that; just stop feeding.
      if ((err as NodeJS.ErrnoException).code !== 'EPIPE') this.onError(err);
      this.stop();
    });
  }

  start(): void {
    void this.tick();
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    const started = Date.now();
    try {
      const frame = (await this.line.next()).rgb;
      if (this.stopped || this.sink.destroyed) return;
      // Backpressure: only write when the decoder has drained the previous frame.
      if (this.sink.writableNeedDrain) {
        await new Promise<void>((res) => this.sink.once('drain', () => res()));
        if (this.stopped) return;
      }
      this.sink.write(frame);
    } catch (err) {
      this.onError(err as Error);
    }
    const period = 1000 / this.line.params.fps;
    this.timer = setTimeout(() => void this.tick(), Math.max(0, period - (Date.now() - started)));
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
