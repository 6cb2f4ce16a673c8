import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import { composeOverlay } from '../../src/render/overlay';
import { renderSnapshot } from '../../src/render/snapshot';
import { renderPart } from '../../src/sources/synthetic/part';
import { createRng } from '../../src/sources/synthetic/rng';
import { libvipsOverlay } from './libvips-overlay';

const norm = { threshold: 0.5, min: 0, max: 1 };

async function input(size: number) {
  const part = await renderPart(createRng(3), size, 'dent');
  const map = new Float32Array(size * size);
  const mask = part.mask as Buffer;
  for (let i = 0; i < map.length; i++) map[i] = mask[i] ? 0.9 : 0.1;
  return { frame: part.rgb, map, width: size, height: size, normalization: norm, mask };
}

describe('snapshots', () => {
  it('draws the same picture as the libvips reference chain (within 1 per channel)', async () => {
    for (const size of [64, 256]) {
      const inp = await input(size);
      // the mask's two levels plus a ripple, so the heat ramp and the threshold are crossed in between too
      inp.map.forEach((v, i) => (inp.map[i] = v + 0.3 * Math.sin(i / 37)));
      const ours = composeOverlay(inp.frame, inp.map, size, size, norm);
      const theirs = await libvipsOverlay(inp, norm);
      let max = 0;
      for (let i = 0; i < ours.length; i++) max = Math.max(max, Math.abs(ours[i] - theirs[i]));
      assert.ok(max <= 1, `size ${size}: largest difference ${max}`);
    }
  });
  it('draws the mask outline over the frame and encodes a JPEG within the cap', async () => {
    const inp = await input(128);
    const snap = await renderSnapshot(inp, { format: 'jpeg', maxBytes: 262144 });
    assert.ok(snap);
    assert.equal(snap.contentType, 'image/jpeg');
    assert.equal(snap.width, 128);
    const { data, info } = await sharp(snap.data).raw().toBuffer({ resolveWithObject: true });
    assert.equal(info.width, 128);
    // Yellow outline pixels (high R+G, low B) appear near the mask, and none far from it.
    let yellow = 0;
    for (let i = 0; i < info.width * info.height; i++) {
      const [r, g, b] = [data[i * 3], data[i * 3 + 1], data[i * 3 + 2]];
      if (r > 200 && g > 170 && b < 90) yellow++;
    }
    assert.ok(yellow > 10, `only ${yellow} outline pixels`);
  });

  it('shrinks quality, then scale, to fit maxBytes; PNG too; null when impossible', async () => {
    const inp = await input(256);
    const big = await renderSnapshot(inp, { format: 'jpeg', maxBytes: 1 << 20 });
    assert.ok(big && big.quality === 85);
    const small = await renderSnapshot(inp, { format: 'jpeg', maxBytes: Math.floor(big.data.length / 3) });
    assert.ok(small);
    assert.ok(small.data.length <= Math.floor(big.data.length / 3));
    assert.ok((small.quality ?? 100) < 85 || small.width < 256);
    const png = await renderSnapshot(inp, { format: 'png', maxBytes: 40000 });
    assert.ok(png && png.contentType === 'image/png' && png.data.length <= 40000);
    assert.equal(await renderSnapshot(inp, { format: 'jpeg', maxBytes: 100 }), null);
  });
});
