import { test } from 'node:test';
import assert from 'node:assert/strict';
import { engineCacheKey, type EngineKeyInputs } from '../../src/tensorrt/cache-key';

const base: EngineKeyInputs = {
  modelSha256: 'a'.repeat(64),
  tensorrtVersion: '10.3.0',
  onnxruntimeVersion: '1.30.0',
  computeCapability: '8.7',
  fp16: true,
  height: 256,
  width: 256,
  maxBatch: 4,
};

test('cache key is stable for the same inputs and independent of property order', () => {
  const a = engineCacheKey(base);
  const reordered = Object.fromEntries(Object.entries(base).reverse()) as unknown as EngineKeyInputs;
  const b = engineCacheKey(reordered);
  assert.equal(a.id, b.id);
  assert.equal(a.digest, b.digest);
  // The readable part names what the engine was built for.
  assert.match(a.id, /^aaaaaaaaaaaa-trt10\.3\.0-sm87-fp16-b4-256x256-[0-9a-f]{12}$/);
  // Upper-case hex from a hand-edited model.json is the same model.
  assert.equal(engineCacheKey({ ...base, modelSha256: 'A'.repeat(64) }).digest, a.digest);
});

test('cache key changes when any input that invalidates an engine changes', () => {
  const variants: Partial<EngineKeyInputs>[] = [
    { modelSha256: 'b'.repeat(64) },
    { modelSha256: 'a'.repeat(63) + 'b' },
    { tensorrtVersion: '10.3.1' },
    { tensorrtVersion: '8.6.2' },
    { onnxruntimeVersion: '1.30.1' },
    { computeCapability: '7.2' },
    { fp16: false },
    { height: 224 },
    { width: 320 },
    { maxBatch: 1 },
    { maxBatch: 8 },
  ];
  const ids = new Set([engineCacheKey(base).id]);
  const digests = new Set([engineCacheKey(base).digest]);
  for (const v of variants) {
    const k = engineCacheKey({ ...base, ...v });
    assert.ok(!ids.has(k.id), `id unchanged for ${JSON.stringify(v)}`);
    assert.ok(!digests.has(k.digest), `digest unchanged for ${JSON.stringify(v)}`);
    ids.add(k.id);
    digests.add(k.digest);
  }
  // height/width swapped is another engine too (the canonical string is not symmetric).
  assert.notEqual(engineCacheKey({ ...base, height: 256, width: 320 }).digest, engineCacheKey({ ...base, height: 320, width: 256 }).digest);
});

test('cache key rejects invalid inputs naming every bad field', () => {
  assert.throws(
    () => engineCacheKey({ ...base, modelSha256: 'xyz', tensorrtVersion: '', computeCapability: 'sm87', maxBatch: 0 }),
    (e: Error) =>
      /modelSha256/.test(e.message) && /tensorrtVersion/.test(e.message) &&
      /computeCapability/.test(e.message) && /maxBatch/.test(e.message) && !/height/.test(e.message),
  );
  assert.throws(() => engineCacheKey({ ...base, height: 1.5 }), /height: expected a positive integer/);
});
