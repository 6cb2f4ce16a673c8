/**
 * NG snapshot: the frame as the model saw it, the anomaly heat map blended in red where it nears the threshold,
 * and the outline of the predicted mask (map >= threshold) in yellow. Encoded as JPEG or PNG and shrunk (quality,
 * then scale) until it fits the size cap.
 */
import sharp from 'sharp';
import { normalizeMapToBytes, Normalization } from '../score/normalize';

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

async function overlay(input: SnapshotInput): Promise<Buffer> {
  const { width, height } = input;
  const mapBytes = Buffer.from(normalizeMapToBytes(input.map, input.normalization).buffer);
  const grey = { raw: { width, height, channels: 1 as const } };
  // Heat: alpha ramps from 0 at normalized 0.25 to full at 0.75 (byte 64..192), via one linear op in libvips.
  const heatAlpha = await sharp(mapBytes, grey).linear(2, -128).extractChannel(0).raw().toBuffer();
  const mask = await sharp(mapBytes, grey).threshold(128).extractChannel(0).raw().toBuffer();
  const dilated = await sharp(mask, grey).dilate(2).extractChannel(0).raw().toBuffer();
  const outline = await sharp(dilated, grey).boolean(mask, 'eor', grey).extractChannel(0).raw().toBuffer();
  const layer = async (rgb: { r: number; g: number; b: number }, alpha: Buffer, scale: number): Promise<Buffer> =>
    sharp({ create: { width, height, channels: 3, background: rgb } })
      .joinChannel(await sharp(alpha, grey).linear(scale, 0).extractChannel(0).raw().toBuffer(), grey)
      .png({ compressionLevel: 0 })
      .toBuffer();
  const heat = await layer({ r: 255, g: 32, b: 0 }, heatAlpha, 0.6);
  const edge = await layer({ r: 255, g: 230, b: 0 }, outline, 1);
  return sharp(input.frame, { raw: { width, height, channels: 3 } })
    .composite([{ input: heat }, { input: edge }])
    .removeAlpha()
    .raw()
    .toBuffer();
}

/** Returns null when even the smallest variant exceeds maxBytes. */
export async function renderSnapshot(input: SnapshotInput, opts: SnapshotOptions): Promise<Snapshot | null> {
  const rgb = await overlay(input);
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
