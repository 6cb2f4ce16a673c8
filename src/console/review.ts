/**
 * "False reject": an operator says an NG frame shows a good part. The frame as the model saw it is saved as PNG
 * (usable as a training image) with a JSON sidecar (score, time, model), under <reviewDir>/<camera>/false-reject/.
 */
import { promises as fsp } from 'node:fs';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import { describeFsError, ensureDir } from './capture';
import type { NgEntry } from './history';

export class ReviewError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

export async function saveFalseReject(reviewDir: string, e: NgEntry): Promise<string> {
  const model = e.model;
  const dir = resolve(reviewDir, e.camera, 'false-reject');
  const stem = `${e.camera}-${new Date(e.capturedAt).toISOString().replace(/[:.]/g, '')}-${String(e.seq).padStart(7, '0')}`;
  const png = join(dir, `${stem}.png`);
  try {
    await ensureDir(dir);
    const data = await sharp(e.frame, { raw: { width: model.width, height: model.height, channels: 3 } }).png().toBuffer();
    await fsp.writeFile(png, data);
    const meta = {
      camera: e.camera,
      seq: e.seq,
      capturedAt: new Date(e.capturedAt).toISOString(),
      score: e.score,
      rawScore: e.rawScore,
      verdict: 'ng',
      review: 'false-reject',
      markedAt: new Date().toISOString(),
      model: { name: model.name, version: model.version },
    };
    await fsp.writeFile(join(dir, `${stem}.json`), `${JSON.stringify(meta, null, 2)}\n`);
  } catch (err) {
    await fsp.unlink(png).catch(() => undefined);
    const d = describeFsError(err as NodeJS.ErrnoException, dir);
    throw new ReviewError(d.message, d.status);
  }
  return png;
}
