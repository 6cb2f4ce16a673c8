import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NewestFrameSlots } from '../../src/pipeline/slots';

const frame = (camera: string, seq: number, capturedAt = seq) => ({ camera, seq, capturedAt, frame: Buffer.from([seq]) });

describe('NewestFrameSlots', () => {
  it('keeps only the newest unprocessed frame per camera and counts the replaced ones', () => {
    const s = new NewestFrameSlots();
    assert.equal(s.put(frame('a', 1)), false);
    assert.equal(s.put(frame('a', 2)), true);
    assert.equal(s.put(frame('a', 3)), true);
    assert.equal(s.put(frame('b', 1)), false);
    assert.equal(s.size, 2);
    assert.equal(s.dropped.get('a'), 2);
    assert.equal(s.dropped.get('b'), undefined);
    const taken = s.take(10);
    assert.deepEqual(taken.map((f) => [f.camera, f.seq]), [['b', 1], ['a', 3]].sort((x, _y) => (x[0] === 'a' ? 1 : -1)));
    assert.equal(s.size, 0);
  });

  it('take(max) serves the oldest captures first so no camera starves', () => {
    const s = new NewestFrameSlots();
    s.put(frame('c', 1, 300));
    s.put(frame('a', 1, 100));
    s.put(frame('b', 1, 200));
    assert.deepEqual(s.take(2).map((f) => f.camera), ['a', 'b']);
    assert.deepEqual(s.take(2).map((f) => f.camera), ['c']);
    assert.deepEqual(s.take(2), []);
  });

  it('memory stays bounded: 10000 frames from 3 cameras leave 3 pending', () => {
    const s = new NewestFrameSlots();
    for (let i = 0; i < 10000; i++) s.put(frame(`cam${i % 3}`, i));
    assert.equal(s.size, 3);
    assert.equal([...s.dropped.values()].reduce((a, b) => a + b, 0), 10000 - 3);
  });

  it('wait() resolves on the next put, and at once when a frame is pending', async () => {
    const s = new NewestFrameSlots();
    let woke = false;
    const w = s.wait().then(() => (woke = true));
    await new Promise((r) => setTimeout(r, 10));
    assert.equal(woke, false);
    s.put(frame('a', 1));
    await w;
    assert.equal(woke, true);
    await s.wait(); // pending frame: immediate
    s.clear('a');
    assert.equal(s.size, 0);
  });
});
