/** Shared bits of the daemon's unit tests. */
import { EventEmitter } from 'node:events';
import { resolve } from 'node:path';
import { Writable } from 'node:stream';
import { createLogger, Logger } from '../../src/log';
import type { FrameSource } from '../../src/pipeline/interfaces';

/** Repository root (tests run from dist/test/unit). */
export const REPO = resolve(__dirname, '..', '..', '..');
export const TINY_MODEL = resolve(REPO, 'test', 'unit', 'fixtures', 'tiny-model');

export interface CapturedLog {
  log: Logger;
  lines: Array<Record<string, unknown>>;
  messages(): string[];
}

/** A pino logger whose JSON lines are kept in memory for assertions. */
export function captureLog(level = 'debug'): CapturedLog {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { log: createLogger(level, sink), lines, messages: () => lines.map((l) => String(l.msg)) };
}

export function silentLog(): Logger {
  return createLogger('silent');
}

export async function until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Stands in for a Camera where only frames matter (the pipeline listens to 'frame' and reads id/captured). */
export class FakeCamera extends EventEmitter implements FrameSource {
  captured = 0;
  constructor(
    readonly id: string,
    /** The frame size pushed, the model's input size (64x64: the tiny test model). */
    public size = { width: 64, height: 64 },
  ) {
    super();
  }
  /** One uniform-grey frame of `value`. */
  push(value: number): void {
    this.captured++;
    this.emit('frame', Buffer.alloc(this.size.width * this.size.height * 3, value), Date.now());
  }
}
