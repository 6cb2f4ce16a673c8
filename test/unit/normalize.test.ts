import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { normalize, normalizeMapToBytes, verdict } from '../../src/score/normalize';

const n = { threshold: 0.0123, min: 0.0011, max: 0.015 };

describe('score normalization (docs/model-format.md)', () => {
  it('maps the threshold to exactly 0.5 and decides ng at >= 0.5', () => {
    assert.equal(normalize(n.threshold, n), 0.5);
    assert.equal(verdict(normalize(n.threshold, n)), 'ng');
    assert.equal(verdict(normalize(n.threshold - 1e-9, n)), 'ok');
  });

  it('is (r - threshold) / (max - min) + 0.5, clamped to [0, 1]', () => {
    const r = 0.013;
    assert.ok(Math.abs(normalize(r, n) - ((r - n.threshold) / (n.max - n.min) + 0.5)) < 1e-12);
    assert.equal(normalize(-5, n), 0);
    assert.equal(normalize(5, n), 1);
    assert.equal(normalize(Number.NaN, n), 1);
  });

  it('maps an anomaly map to bytes with the threshold at 128', () => {
    const span = n.max - n.min;
    const map = new Float32Array([n.threshold + 1e-6, n.threshold - 1e-6, -1, 1, n.threshold - 0.25 * span]);
    const b = normalizeMapToBytes(map, n);
    assert.deepEqual([...b], [128, 127, 0, 255, 64]);
  });
});
