import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { executionProviders, profileShape, tensorrtProviderOptions, type TensorRtProviderConfig } from '../../src/tensorrt/provider-options';
import { fallbackLine, isProviderUnavailableError, planProviders, resolveTensorRt, type TensorRtSetup } from '../../src/tensorrt/provider-plan';
import type { PlatformFacts } from '../../src/tensorrt/platform';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { writeReadyMarker } from '../../src/tensorrt/engine-cache';

const opts = {
  engineDir: '/var/cache/etstpm/trt/engines/k1',
  timingCacheDir: '/var/cache/etstpm/trt/timing/trt10.3.0-sm87',
  fp16: true,
  inputName: 'frames',
  height: 256,
  width: 256,
  maxBatch: 4,
};

test('TensorRT provider options carry fp16, engine and timing cache and an explicit 1..maxBatch profile', () => {
  const o = tensorrtProviderOptions(opts);
  assert.equal(o.name, 'tensorrt');
  assert.equal(o.deviceId, 0);
  assert.equal(o.trt_fp16_enable, '1');
  assert.equal(o.trt_engine_cache_enable, '1');
  assert.equal(o.trt_engine_cache_path, opts.engineDir);
  assert.equal(o.trt_timing_cache_enable, '1');
  assert.equal(o.trt_timing_cache_path, opts.timingCacheDir);
  assert.equal(o.trt_profile_min_shapes, 'frames:1x256x256x3');
  assert.equal(o.trt_profile_opt_shapes, 'frames:4x256x256x3');
  assert.equal(o.trt_profile_max_shapes, 'frames:4x256x256x3');
  // Every forwarded option is a string: the patched binding rejects anything else.
  for (const [k, v] of Object.entries(o)) if (k.startsWith('trt_')) assert.equal(typeof v, 'string', k);
  assert.equal(tensorrtProviderOptions({ ...opts, fp16: false }).trt_fp16_enable, '0');
  assert.equal(tensorrtProviderOptions({ ...opts, engineDir: 'rel/dir' }).trt_engine_cache_path, path.resolve('rel/dir'));
  assert.equal(profileShape('x', 2, 3, 5), 'x:2x3x5x3');
});

test('TensorRT provider options reject values the profile syntax cannot carry', () => {
  assert.throws(() => tensorrtProviderOptions({ ...opts, inputName: 'a,b' }), /inputName/);
  assert.throws(() => tensorrtProviderOptions({ ...opts, inputName: 'a:b' }), /inputName/);
  assert.throws(() => tensorrtProviderOptions({ ...opts, maxBatch: 0, deviceId: -1 }), /maxBatch.*deviceId/);
});

test('executionProviders keeps the configured order and drops TensorRT when not usable', () => {
  const trt = tensorrtProviderOptions(opts);
  assert.deepEqual(executionProviders(['tensorrt', 'cuda', 'cpu'], trt), [trt, { name: 'cuda', deviceId: 0 }, 'cpu']);
  assert.deepEqual(executionProviders(['cpu', 'tensorrt'], trt), ['cpu', trt]);
  assert.deepEqual(executionProviders(['tensorrt', 'cuda', 'cpu'], null), [{ name: 'cuda', deviceId: 0 }, 'cpu']);
  assert.throws(() => executionProviders(['cpu', 'cpu'], null), /listed twice/);
  assert.throws(() => executionProviders(['gpu' as never], null), /unknown provider "gpu"/);
});

const jetson: PlatformFacts = {
  tensorrtVersion: '10.3.0',
  tensorrtLibrary: '/usr/lib/aarch64-linux-gnu/libnvinfer.so.10.3.0',
  computeCapability: '8.7',
  deviceModel: 'NVIDIA Jetson AGX Orin Developer Kit',
  l4tRelease: '36.4.0',
};
const model = { sha256: 'c'.repeat(64), inputName: 'frames', height: 256, width: 256 };

function setupIn(cacheDir: string, platform: PlatformFacts = jetson): TensorRtSetup {
  return resolveTensorRt({ model, cacheDir, fp16: true, maxBatch: 4, onnxruntimeVersion: '1.30.0', platform });
}

test('provider plan: TensorRT only with a prebuilt engine; otherwise the next provider and a clear reason', () => {
  const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'trt-plan-'));
  try {
    // No TensorRT library: dropped, the note says why and what is used instead.
    const none = setupIn(cache, { ...jetson, tensorrtVersion: null, tensorrtLibrary: null });
    assert.equal(none.usable, false);
    const p0 = planProviders(['tensorrt', 'cuda', 'cpu'], none);
    assert.deepEqual(p0.order, ['cuda', 'cpu']);
    assert.match(p0.notes[0]!, /^TensorRT unavailable: no TensorRT library .*; using cuda -> cpu$/);

    // Unknown GPU: dropped as well.
    const noCc = setupIn(cache, { ...jetson, computeCapability: null });
    assert.equal(noCc.usable, false);
    assert.match(planProviders(['tensorrt', 'cpu'], noCc).notes[0]!, /compute capability unknown.*using cpu$/);

    // TensorRT present but no engine built yet: never build inside the start, say how to build it.
    const missing = setupIn(cache);
    assert.ok(missing.usable && missing.state.state === 'missing');
    const p1 = planProviders(['tensorrt', 'cuda', 'cpu'], missing);
    assert.deepEqual(p1.order, ['cuda', 'cpu']);
    assert.match(p1.notes[0]!, /not built yet: run `node dist\/src\/tensorrt\/engine-build\.js .*`; using cuda -> cpu until then/);
    // ... unless explicitly allowed (development).
    const p2 = planProviders(['tensorrt', 'cuda', 'cpu'], missing, { allowEngineBuildAtStart: true });
    assert.deepEqual(p2.order, ['tensorrt', 'cuda', 'cpu']);
    assert.match(p2.notes[0]!, /building it during start/);

    // Engine built (marker + engine file): TensorRT first, with the provider options for that key.
    assert.ok(missing.usable);
    fs.mkdirSync(missing.engineDir, { recursive: true });
    fs.writeFileSync(path.join(missing.engineDir, 'TensorrtExecutionProvider_TRTKernel_graph_x_1_sm87.engine'), Buffer.alloc(10));
    writeReadyMarker(missing.engineDir, {
      format: 'etstpm-trt-ready/1', keyId: missing.key.id, digest: missing.key.digest, canonical: missing.key.canonical,
      builtAt: new Date().toISOString(), buildMs: 1, engines: [{ file: 'TensorrtExecutionProvider_TRTKernel_graph_x_1_sm87.engine', bytes: 10 }],
    });
    const ready = setupIn(cache);
    assert.ok(ready.usable && ready.state.state === 'ready');
    const p3 = planProviders(['tensorrt', 'cuda', 'cpu'], ready);
    assert.deepEqual(p3.order, ['tensorrt', 'cuda', 'cpu']);
    assert.equal(p3.entries[0], ready.provider);
    assert.equal((p3.entries[0] as TensorRtProviderConfig).trt_engine_cache_path, ready.engineDir);
    assert.match(p3.notes[0]!, /prebuilt engine .* \(fp16\)/);

    // Only TensorRT configured and unusable: nothing left, said plainly.
    assert.deepEqual(planProviders(['tensorrt'], none).order, []);
    assert.match(planProviders(['tensorrt'], none).notes[0]!, /using nothing \(no execution provider left\)/);
    // TensorRT not requested: no note, order untouched.
    assert.deepEqual(planProviders(['cuda', 'cpu'], ready), { order: ['cuda', 'cpu'], entries: [{ name: 'cuda', deviceId: 0 }, 'cpu'], notes: [] });
  } finally {
    fs.rmSync(cache, { recursive: true, force: true });
  }
});

test('fallback line and unavailable-provider classification', () => {
  assert.equal(
    fallbackLine('tensorrt', new Error('boom\nstack'), ['cuda', 'cpu']),
    'execution provider tensorrt failed: boom; falling back to cuda -> cpu',
  );
  assert.ok(isProviderUnavailableError(new Error("Invalid argument: sessionOptions.executionProviders[0] is unsupported: 'tensorrt'.")));
  assert.ok(isProviderUnavailableError(new Error('OrtSessionOptionsAppendExecutionProvider_TensorRT: Failed to load shared library')));
  assert.ok(!isProviderUnavailableError(new Error('Load model from m.onnx failed:Protobuf parsing failed.')));
});
