import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FrameReader } from '../../src/sources/frame-reader';
import { createRng } from '../../src/sources/synthetic/rng';

function stream(frames: number, frameBytes: number): Buffer {
  const b = Buffer.alloc(frames * frameBytes);
  for (let f = 0; f < frames; f++) b.fill(f + 1, f * frameBytes, (f + 1) * frameBytes);
  return b;
}

describe('FrameReader', () => {
  it('reassembles exact frames across arbitrary chunk boundaries', () => {
    const frameBytes = 7 * 5 * 3;
    const data = stream(20, frameBytes);
    const rng = createRng(3);
    for (let trial = 0; trial < 50; trial++) {
      const got: Buffer[] = [];
      const r = new FrameReader(frameBytes, (f) => got.push(f));
      let off = 0;
      while (off < data.length) {
        const n = 1 + Math.floor(rng() * frameBytes * 2.5); // chunks smaller and larger than a frame
        r.push(data.subarray(off, off + n));
        off += n;
      }
      assert.equal(got.length, 20);
      got.forEach((f, i) => {
        assert.equal(f.length, frameBytes);
        assert.ok(f.every((v) => v === i + 1), `frame ${i} mixed bytes of another frame`);
      });
      assert.equal(r.pending, 0);
    }
  });

  it('holds a partial frame back and returns distinct buffers', () => {
    const got: Buffer[] = [];
    const r = new FrameReader(4, (f) => got.push(f));
    r.push(Buffer.from([1, 1, 1, 1, 2, 2]));
    assert.equal(got.length, 1);
    assert.equal(r.pending, 2);
    r.push(Buffer.from([2, 2, 3, 3, 3, 3, 4]));
    assert.deepEqual(got.map((b) => [...b]), [[1, 1, 1, 1], [2, 2, 2, 2], [3, 3, 3, 3]]);
    assert.notEqual(got[0].buffer === got[1].buffer && got[0].byteOffset === got[1].byteOffset, true);
    r.reset();
    assert.equal(r.pending, 0);
  });

  it('rejects a non-positive frame size', () => {
    assert.throws(() => new FrameReader(0, () => undefined), RangeError);
  });
});
