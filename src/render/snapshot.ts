/**
 * NG snapshot: the frame as the model saw it, the anomaly heat map blended in red where it nears the threshold,
 * and the outline of the predicted mask (map >= threshold) in yellow (src/render/overlay.ts). Encoded as JPEG or PNG and shrunk (quality,
 * then scale) until it fits the size cap.
 */
import sharp from 'sharp';
import type { Normalization } from '../score/normalize';
import { composeOverlay } from './overlay';

export interface SnapshotInput {
  frame: Buffer; // RGB24, width*height*3
  map: Float32Array; // raw anomaly map, width*height
  width: number;
  height: number;
  normalization: Normalization;
}

export interface SnapshotOptions {
  format: 'jpeg' | 'png';
  maxBytes: number;
}

export interface Snapshot {
  data: Buffer;
  contentType: string;
  width: number;
  height: number;
  quality: number | null;
}

const JPEG_QUALITIES = [85, 70, 55, 40, 25];
const MIN_SIDE = 32;

/** Returns null when even the smallest variant exceeds maxBytes. */
export async function renderSnapshot(input: SnapshotInput, opts: SnapshotOptions): Promise<Snapshot | null> {
  // Composed synchronously in JavaScript before the first await (src/render/overlay.ts for why not libvips).
  const rgb = composeOverlay(input.frame, input.map, input.width, input.height, input.normalization);
  let w = input.width;
  let h = input.height;
  while (w >= MIN_SIDE && h >= MIN_SIDE) {
    const base = () =>
      w === input.width ? sharp(rgb, { raw: { width: input.width, height: input.height, channels: 3 } }) : sharp(rgb, { raw: { width: input.width, height: input.height, channels: 3 } }).resize(w, h);
    if (opts.format === 'png') {
      const data = await base().png({ compressionLevel: 9 }).toBuffer();
      if (data.length <= opts.maxBytes) return { data, contentType: 'image/png', width: w, height: h, quality: null };
    } else {
      for (const q of JPEG_QUALITIES) {
        const data = await base().jpeg({ quality: q, mozjpeg: false }).toBuffer();
        if (data.length <= opts.maxBytes) return { data, contentType: 'image/jpeg', width: w, height: h, quality: q };
      }
    }
    w = Math.floor(w * 0.7);
    h = Math.floor(h * 0.7);
  }
  return null;
}
