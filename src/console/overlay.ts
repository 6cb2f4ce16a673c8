/**
 * The console's overlay: the same picture as the MQTT snapshot (src/publish/snapshot.ts: red heat map whose alpha
 * ramps from normalised 0.25 to 0.75 at 0.6 opacity, yellow 2 px band along the inside edge of the mask map >= threshold:
 * snapshot.ts's `dilate(2)` on a white mask acts as libvips' 5x5 erosion, and the band is mask XOR that)
 * composed in one pass over the pixels in JavaScript, then one JPEG encode. snapshot.ts chains nine libvips
 * operations; each is a thread-pool round trip, and next to a busy inference on two cores those round trips made a
 * live image take seconds (bench/results/console-cost.json). Here it is about 2 ms of JavaScript plus one encode.
 */
import sharp from 'sharp';
import { normalizeMapToBytes, Normalization } from '../score/normalize';

const HEAT = [255, 32, 0];
const EDGE = [255, 230, 0];
const RADIUS = 2;

/** min over a (2r+1) window along rows, then along columns: a square erosion of the 0/1 mask (outside = 0). */
function erode(mask: Uint8Array, w: number, h: number, r: number): Uint8Array {
  const tmp = new Uint8Array(mask.length);
  const out = new Uint8Array(mask.length);
  for (let y = 0; y < h; y++) {
    const row = y * w;
    for (let x = 0; x < w; x++) {
      let m = 1;
      for (let k = x - r; k <= x + r && m; k++) m = k < 0 || k >= w ? 0 : mask[row + k];
      tmp[row + x] = m;
    }
  }
  for (let x = 0; x < w; x++) {
    for (let y = 0; y < h; y++) {
      let m = 1;
      for (let k = y - r; k <= y + r && m; k++) m = k < 0 || k >= h ? 0 : tmp[k * w + x];
      out[y * w + x] = m;
    }
  }
  return out;
}

/** RGB24 frame with heat map and mask outline drawn in (a new buffer). */
export function composeOverlay(frame: Buffer, map: Float32Array, width: number, height: number, n: Normalization): Buffer {
  const bytes = normalizeMapToBytes(map, n);
  const mask = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) mask[i] = bytes[i] >= 128 ? 1 : 0;
  const inner = erode(mask, width, height, RADIUS);
  const out = Buffer.allocUnsafe(width * height * 3);
  for (let i = 0; i < bytes.length; i++) {
    const o = i * 3;
    if (mask[i] && !inner[i]) {
      out[o] = EDGE[0];
      out[o + 1] = EDGE[1];
      out[o + 2] = EDGE[2];
      continue;
    }
    // snapshot.ts: alpha byte = clamp(2*b - 128), scaled by 0.6
    const a = (Math.min(255, Math.max(0, 2 * bytes[i] - 128)) / 255) * 0.6;
    out[o] = frame[o] + (HEAT[0] - frame[o]) * a;
    out[o + 1] = frame[o + 1] + (HEAT[1] - frame[o + 1]) * a;
    out[o + 2] = frame[o + 2] + (HEAT[2] - frame[o + 2]) * a;
  }
  return out;
}

export async function overlayJpeg(frame: Buffer, map: Float32Array, width: number, height: number, n: Normalization, quality = 85): Promise<Buffer> {
  const rgb = composeOverlay(frame, map, width, height, n);
  return sharp(rgb, { raw: { width, height, channels: 3 } }).jpeg({ quality, mozjpeg: false }).toBuffer();
}
