/**
 * "Capture good parts": writes every Nth frame of one camera as PNG into <root>/<camera>/train/good/, the layout
 * `etstpm train --data <root> --category <camera>` reads. Bounded by an image count and a byte budget; at most one
 * write in flight (a frame arriving meanwhile is skipped and counted, never queued), so a slow or full disk never
 * holds frames back from inference. Write errors stop the capture with a reason; they never throw into the caller.
 */
import { constants, promises as fsp } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import sharp from 'sharp';
import type { Logger } from '../log';
import type { CaptureLimits, ConsoleResult } from './types';

export type CaptureState = 'idle' | 'running' | 'done' | 'error';

export interface CaptureStatus {
  camera: string;
  state: CaptureState;
  dir: string;
  everyN: number;
  maxImages: number;
  maxBytes: number;
  written: number;
  bytes: number;
  /** Frames due for writing while the previous write was still in flight. */
  skipped: number;
  startedAt: number | null;
  stoppedAt: number | null;
  /** Why it stopped (cap reached, operator, error). */
  reason?: string;
}

export interface CaptureRequest {
  everyN?: number;
  maxImages?: number;
  maxBytes?: number;
}

/** A refused request: `status` is the HTTP status to answer with, `message` says what to fix. */
export class CaptureError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

/** File-system error codes as a person reads them. */
export function describeFsError(err: NodeJS.ErrnoException, path: string): { message: string; status: number } {
  switch (err.code) {
    case 'ENOSPC':
      return { message: `disk full: cannot write ${path} (ENOSPC)`, status: 507 };
    case 'EDQUOT':
      return { message: `disk quota exceeded: cannot write ${path} (EDQUOT)`, status: 507 };
    case 'EROFS':
      return { message: `read-only file system: cannot write ${path} (EROFS)`, status: 507 };
    case 'EACCES':
    case 'EPERM':
      return { message: `permission denied: cannot write ${path} (${err.code})`, status: 507 };
    case 'ENOTDIR':
      return { message: `not a folder: ${path} (ENOTDIR: a file is in the way)`, status: 507 };
    case 'EEXIST':
      return { message: `already exists: ${path} (EEXIST)`, status: 507 };
    default:
      return { message: `cannot write ${path} (${err.code ?? err.message})`, status: 500 };
  }
}

/**
 * mkdir -p that reports the real cause: Node's recursive mkdir says ENOENT where the first missing folder cannot be
 * made (EROFS, EACCES), so that folder is made once more on its own to get the true code.
 */
export async function ensureDir(dir: string): Promise<void> {
  try {
    await fsp.mkdir(dir, { recursive: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    let missing = dir;
    for (let up = dirname(missing); up !== missing; missing = up, up = dirname(up)) {
      if (await fsp.stat(up).then(() => true, () => false)) break;
    }
    await fsp.mkdir(missing);
    throw err;
  }
}

function intIn(v: unknown, key: string, min: number, max: number, dflt: number): number {
  if (v === undefined) return Math.min(dflt, max);
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new CaptureError(`${key}: must be an integer (${min}..${max})`, 400);
  if (v < min || v > max) throw new CaptureError(`${key}: must be between ${min} and ${max} (the configured cap)`, 400);
  return v;
}

/** Free bytes for an unprivileged writer on the file system holding `dir`. */
async function freeBytes(dir: string): Promise<number> {
  const s = await fsp.statfs(dir);
  return Number(s.bavail) * Number(s.bsize);
}

export class CaptureWriter {
  private st: CaptureStatus;
  private frames = 0;
  private writing = false;
  private generation = 0;

  constructor(
    readonly camera: string,
    private readonly limits: CaptureLimits,
    private readonly log: Logger,
  ) {
    this.st = this.fresh('idle', limits.everyN, limits.maxImages, limits.maxBytes);
  }

  get dir(): string {
    return resolve(this.limits.root, this.camera, 'train', 'good');
  }

  private fresh(state: CaptureState, everyN: number, maxImages: number, maxBytes: number): CaptureStatus {
    return { camera: this.camera, state, dir: this.dir, everyN, maxImages, maxBytes, written: 0, bytes: 0, skipped: 0, startedAt: null, stoppedAt: null };
  }

  status(): CaptureStatus {
    return { ...this.st };
  }

  get running(): boolean {
    return this.st.state === 'running';
  }

  /** Validates the request against the caps and checks the folder can take files; throws CaptureError. */
  async start(req: CaptureRequest): Promise<CaptureStatus> {
    if (this.running) throw new CaptureError(`camera ${this.camera}: capture already running (stop it first)`, 409);
    const L = this.limits;
    const everyN = intIn(req.everyN, 'everyN', 1, 100000, L.everyN);
    const maxImages = intIn(req.maxImages, 'maxImages', 1, L.maxImages, L.maxImages);
    const maxBytes = intIn(req.maxBytes, 'maxBytes', 1, L.maxBytes, L.maxBytes);
    const dir = this.dir;
    try {
      await ensureDir(dir);
      await fsp.access(dir, constants.W_OK);
      // access() says yes to root on a read-only mount: a real write tells.
      const probe = join(dir, `.write-probe-${process.pid}`);
      await fsp.writeFile(probe, '');
      await fsp.unlink(probe);
    } catch (err) {
      const d = describeFsError(err as NodeJS.ErrnoException, dir);
      throw new CaptureError(`camera ${this.camera}: ${d.message}`, d.status);
    }
    const free = await freeBytes(dir).catch(() => Infinity);
    if (free < L.minFreeBytes) {
      throw new CaptureError(`camera ${this.camera}: disk full: ${free} bytes free under ${dir}, capture needs at least ${L.minFreeBytes} (console.capture.minFreeBytes)`, 507);
    }
    this.generation++;
    this.frames = 0;
    this.st = { ...this.fresh('running', everyN, maxImages, maxBytes), startedAt: Date.now() };
    this.log.info({ camera: this.camera, dir, everyN, maxImages, maxBytes }, 'capture started');
    return this.status();
  }

  stop(reason = 'stopped by operator'): CaptureStatus {
    if (this.running) this.finish('done', reason);
    return this.status();
  }

  private finish(state: 'done' | 'error', reason: string): void {
    this.st.state = state;
    this.st.reason = reason;
    this.st.stoppedAt = Date.now();
    const fields = { camera: this.camera, written: this.st.written, bytes: this.st.bytes, skipped: this.st.skipped, reason };
    if (state === 'error') this.log.error(fields, 'capture stopped by an error');
    else this.log.info(fields, 'capture finished');
  }

  /** Called for every scored frame of this camera; returns at once. */
  offer(r: ConsoleResult): void {
    if (!this.running) return;
    this.frames++;
    if (this.frames % this.st.everyN !== 0) return;
    if (this.writing) {
      this.st.skipped++;
      return;
    }
    this.writing = true;
    const gen = this.generation;
    void this.write(r.frame, { width: r.model.width, height: r.model.height }, r.seq, r.capturedAt, gen).finally(() => {
      this.writing = false;
    });
  }

  /** Resolves when no write is in flight (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.writing) await new Promise((res) => setTimeout(res, 5));
  }

  /** `size`: the input size of the model that scored the frame (the frame is RGB at that size). */
  private async write(frame: Buffer, size: { width: number; height: number }, seq: number, capturedAt: number, gen: number): Promise<void> {
    const { width, height } = size;
    const name = `${this.camera}-${new Date(capturedAt).toISOString().replace(/[:.]/g, '')}-${String(seq).padStart(7, '0')}.png`;
    const path = join(this.dir, name);
    try {
      const png = await sharp(frame, { raw: { width, height, channels: 3 } }).png({ compressionLevel: 6 }).toBuffer();
      if (gen !== this.generation || !this.running) return;
      if (this.st.bytes + png.length > this.st.maxBytes) {
        this.finish('done', `byte cap reached (${this.st.bytes} of ${this.st.maxBytes} bytes written)`);
        return;
      }
      await fsp.writeFile(path, png, { flag: 'wx' });
      if (gen !== this.generation) return;
      this.st.written++;
      this.st.bytes += png.length;
      if (this.st.written >= this.st.maxImages) {
        this.finish('done', `image cap reached (${this.st.written} images)`);
        return;
      }
      const free = await freeBytes(this.dir).catch(() => Infinity);
      if (gen === this.generation && this.running && free < this.limits.minFreeBytes) {
        this.finish('error', `disk full: ${free} bytes free under ${this.dir}, below console.capture.minFreeBytes (${this.limits.minFreeBytes})`);
      }
    } catch (err) {
      if (gen !== this.generation || !this.running) return;
      // A half-written file would fail `etstpm train`'s validation: remove it.
      await fsp.unlink(path).catch(() => undefined);
      this.finish('error', describeFsError(err as NodeJS.ErrnoException, path).message);
    }
  }
}
