/**
 * The picture of an NG frame shared by MQTT snapshots (src/render/snapshot.ts) and the operator console
 * (src/render/overlay-jpeg.ts): red heat map whose alpha ramps from normalised 0.25 to 0.75 at 0.6 opacity, and a yellow
 * 2 px band along the inside edge of the predicted mask (map >= threshold), composed in one pass over the pixels in
 * JavaScript (about 1-2 ms at 256x256). It replaced a chain of nine libvips operations (about 30 ms CPU per snapshot,
 * a quarter of one inference of the demo model, and nine thread-pool round trips); test/unit/snapshot.test.ts keeps
 * that chain as the reference the picture is checked against.
 */
import { normalizeMapToBytes, Normalization } from '../score/normalize';

const HEAT = [255, 32, 0];
const EDGE = [255, 230, 0];
const RADIUS = 2;

/**
 * Square (2r+1) erosion of a 0/1 mask (outside = 0), separable and in one row-major pass per direction: a pixel stays
 * 1 when the run of 1s ending r pixels further on is at least 2r+1 long.
 */
function erode(mask: Uint8Array, w: number, h: number, r: number): Uint8Array {
  const span = 2 * r + 1;
  const tmp = new Uint8Array(mask.length);
  const out = new Uint8Array(mask.length);
  for (let y = 0; y < h; y++) {
    const row = y * w;
    let run = 0;
    for (let x = 0; x < w; x++) {
      run = mask[row + x] ? run + 1 : 0;
      if (run >= span) tmp[row + x - r] = 1;
    }
  }
  const runs = new Uint16Array(w);
  for (let y = 0; y < h; y++) {
    const row = y * w;
    for (let x = 0; x < w; x++) {
      const v = tmp[row + x] ? runs[x] + 1 : 0;
      runs[x] = v;
      if (v >= span) out[row - r * w + x] = 1;
    }
  }
  return out;
}

/** Heat alpha per map byte: clamp(2*b - 128) / 255 * 0.6 (the libvips chain's linear(2, -128) then linear(0.6)). */
const HEAT_ALPHA = Float64Array.from({ length: 256 }, (_, b) => (Math.min(255, Math.max(0, 2 * b - 128)) / 255) * 0.6);

/**
 * RGB24 frame with heat map and mask outline drawn in (a new buffer). Runs on the event loop once per NG frame, so it
 * is kept to table look-ups and a copy where the heat is transparent (bench: about 1 ms CPU at 256x256).
 */
export function composeOverlay(frame: Buffer, map: Float32Array, width: number, height: number, n: Normalization): Buffer {
  const bytes = normalizeMapToBytes(map, n);
  const mask = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) mask[i] = bytes[i] >= 128 ? 1 : 0;
  const inner = erode(mask, width, height, RADIUS);
  const out = Buffer.allocUnsafe(width * height * 3);
  for (let i = 0, o = 0; i < bytes.length; i++, o += 3) {
    if (mask[i] && !inner[i]) {
      out[o] = EDGE[0];
      out[o + 1] = EDGE[1];
      out[o + 2] = EDGE[2];
      continue;
    }
    const a = HEAT_ALPHA[bytes[i]];
    const r = frame[o];
    const g = frame[o + 1];
    const b = frame[o + 2];
    if (a === 0) {
      out[o] = r;
      out[o + 1] = g;
      out[o + 2] = b;
      continue;
    }
    out[o] = r + (HEAT[0] - r) * a;
    out[o + 1] = g + (HEAT[1] - g) * a;
    out[o + 2] = b + (HEAT[2] - b) * a;
  }
  return out;
}
