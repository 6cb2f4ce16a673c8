import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import { DEFECT_KINDS, pickDefect, renderPart } from '../../src/sources/synthetic/part';
import { createRng } from '../../src/sources/synthetic/rng';
import { writeSynthDataset } from '../../src/tools/synth-dataset';

describe('synthetic parts', () => {
  it('same seed, same part; different seeds differ (pose/lighting jitter)', async () => {
    const a = await renderPart(createRng(7), 64, null);
    const b = await renderPart(createRng(7), 64, null);
    const c = await renderPart(createRng(8), 64, null);
    assert.equal(a.rgb.length, 64 * 64 * 3);
    assert.ok(a.rgb.equals(b.rgb));
    assert.ok(!a.rgb.equals(c.rgb));
    assert.equal(a.mask, null);
  });

  it('every defect kind changes pixels inside its non-empty binary mask', async () => {
    for (const kind of DEFECT_KINDS) {
      const good = await renderPart(createRng(11), 128, null);
      const bad = await renderPart(createRng(11), 128, kind);
      const mask = bad.mask as Buffer;
      assert.ok(mask.every((v) => v === 0 || v === 255), `${kind}: mask not binary`);
      const area = mask.filter((v) => v === 255).length;
      assert.ok(area > 10 && area < 128 * 128 * 0.2, `${kind}: mask area ${area}`);
      // The pose is drawn before the defect from the same rng state, so only the defect differs.
      let changedInside = 0;
      for (let i = 0; i < mask.length; i++) {
        if (mask[i] === 255 && Math.abs(good.rgb[i * 3] - bad.rgb[i * 3]) > 20) changedInside++;
      }
      assert.ok(changedInside > area * 0.3, `${kind}: only ${changedInside}/${area} mask pixels visibly changed`);
    }
  });

  it('defect rate controls how often a defect is picked', () => {
    const rng = createRng(1);
    let n = 0;
    for (let i = 0; i < 2000; i++) if (pickDefect(rng, 0.1)) n++;
    assert.ok(n > 140 && n < 260, `picked ${n}/2000 at rate 0.1`);
    assert.equal(pickDefect(createRng(2), 0), null);
  });

  it('dataset writer produces the MVTec AD layout with binary masks', async () => {
    const out = mkdtempSync(join(tmpdir(), 'etstpm-synth-'));
    const n = await writeSynthDataset({ out, category: 'synthetic_part', train: 3, testGood: 2, testDefect: 4, size: 64, seed: 1 });
    assert.equal(n, 9);
    const root = join(out, 'synthetic_part');
    assert.deepEqual(readdirSync(join(root, 'train', 'good')).sort(), ['000.png', '001.png', '002.png']);
    assert.deepEqual(readdirSync(join(root, 'test')).sort(), ['dent', 'good', 'missing_piece', 'scratch']);
    assert.deepEqual(readdirSync(join(root, 'test', 'scratch')).sort(), ['000.png', '001.png']);
    assert.deepEqual(readdirSync(join(root, 'ground_truth', 'scratch')).sort(), ['000_mask.png', '001_mask.png']);
    assert.ok(!existsSync(join(root, 'ground_truth', 'good')));
    const { data, info } = await sharp(join(root, 'ground_truth', 'dent', '000_mask.png')).raw().toBuffer({ resolveWithObject: true });
    assert.equal(info.width, 64);
    assert.ok(data.every((v) => v === 0 || v === 255));
    assert.ok(data.some((v) => v === 255));
  });
});

describe('demo ground truth', () => {
  it('lineTruth replays exactly the defects the synthetic camera puts on the belt', async () => {
    const { SyntheticLine } = await import('../../src/sources/synthetic/feeder');
    const { lineTruth } = await import('../../src/tools/demo-truth');
    const { parseSynthetic } = await import('../../src/sources/url');
    const url = 'synthetic://?defectRate=0.4&seed=5&size=32';
    const line = new SyntheticLine(parseSynthetic(url));
    const seen: Array<string | null> = [null];
    for (let i = 0; i < 25; i++) seen.push((await line.next()).defect);
    assert.deepEqual(await lineTruth(url, 25), seen);
    assert.ok(seen.filter(Boolean).length >= 3);
  });
});
