/**
 * The console's overlay: the same picture as the MQTT snapshot (overlay.ts, composed in JavaScript),
 * then one JPEG encode. A chain of libvips operations (each a thread-pool round trip) next to a busy inference on
 * two cores made a live image take seconds (bench/results/console-cost.json).
 */
import sharp from 'sharp';
import { composeOverlay } from './overlay';
import type { Normalization } from '../score/normalize';

export async function overlayJpeg(frame: Buffer, map: Float32Array, width: number, height: number, n: Normalization, quality = 85): Promise<Buffer> {
  const rgb = composeOverlay(frame, map, width, height, n);
  return sharp(rgb, { raw: { width, height, channels: 3 } }).jpeg({ quality, mozjpeg: false }).toBuffer();
}
