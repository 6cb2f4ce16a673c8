// Reference for the NG overlay (used by test/unit/snapshot.test.ts and bench/daemon/snapshot-cost.ts).
import sharp from 'sharp';
import { normalizeMapToBytes, Normalization } from '../../src/score/normalize';

/**
 * The libvips chain snapshot.ts used before the overlay moved to JavaScript (src/render/overlay.ts): kept as an
 * independent reference for the picture (heat alpha = clamp(2b - 128) * 0.6, mask = b >= 128, band = mask XOR
 * dilate(2)).
 */
export async function libvipsOverlay(inp: { frame: Buffer; map: Float32Array; width: number; height: number }, norm: Normalization): Promise<Buffer> {
  const { width, height } = inp;
  const mapBytes = Buffer.from(normalizeMapToBytes(inp.map, norm).buffer);
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
  return sharp(inp.frame, { raw: { width, height, channels: 3 } })
    .composite([{ input: heat }, { input: edge }])
    .removeAlpha()
    .raw()
    .toBuffer();
}
