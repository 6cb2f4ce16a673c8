import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { ModelError } from '../../src/infer/manifest';
import { InferenceEngine, providerAttempts } from '../../src/infer/session';
import { FrameBatcher } from '../../src/infer/tensor';
import { captureLog, silentLog, TINY_MODEL } from './helpers';

const TRT = { cacheDir: join(tmpdir(), 'etstpm-trt-test'), fp16: true };
const SIZE = 64;

function modelCopy(edit?: (manifest: Record<string, any>, dir: string) => void): string {
  const dir = mkdtempSync(join(tmpdir(), 'etstpm-model-'));
  cpSync(TINY_MODEL, dir, { recursive: true });
  if (edit) {
    const f = join(dir, 'model.json');
    const m = JSON.parse(readFileSync(f, 'utf8')) as Record<string, any>;
    edit(m, dir);
    writeFileSync(f, JSON.stringify(m));
  }
  return dir;
}

describe('inference engine', () => {
  it('falls back through the configured providers in order and logs the one in use', async () => {
    const cap = captureLog();
    // As if the binding had every provider library: each is tried, and fails on this machine without a GPU.
    const engine = await InferenceEngine.load({ modelDir: TINY_MODEL, providers: ['tensorrt', 'cuda', 'cpu'], maxBatch: 4, tensorrt: TRT }, cap.log,
      undefined, (requested) => ({ usable: [...requested], skipped: [] }));
    // This machine's onnxruntime-node has neither TensorRT nor CUDA: the chain must end on cpu.
    assert.equal(engine.provider, 'cpu');
    const msgs = cap.messages();
    const iTrt = msgs.findIndex((m) => m.includes('tensorrt') && m.includes('falling back to cuda'));
    const iCuda = msgs.findIndex((m) => m.startsWith('execution provider cuda unavailable, falling back to cpu'));
    const iUse = msgs.indexOf('inference provider in use: cpu');
    assert.ok(iTrt >= 0 && iCuda > iTrt && iUse > iCuda, `unexpected log order:\n${msgs.join('\n')}`);
    assert.ok(msgs.some((m) => m === 'model warm-up done'), 'no warm-up before ready');
    await engine.close();
  });

  it('tries each provider with the remaining ones as per-node fallbacks', async () => {
    assert.deepEqual(providerAttempts(['tensorrt', 'cuda', 'cpu']), [['tensorrt', 'cuda', 'cpu'], ['cuda', 'cpu'], ['cpu']]);
    const seen: unknown[] = [];
    const engine = await InferenceEngine.load(
      { modelDir: TINY_MODEL, providers: ['cuda', 'cpu'], maxBatch: 2, tensorrt: TRT },
      silentLog(),
      async (path, opts) => {
        seen.push(opts.executionProviders);
        if (JSON.stringify(opts.executionProviders).includes('cuda')) throw new Error('no CUDA here (test)');
        return ort.InferenceSession.create(path, opts);
      },
      (requested) => ({ usable: [...requested], skipped: [] }),
    );
    assert.deepEqual(seen, [[{ name: 'cuda', deviceId: 0 }, 'cpu'], ['cpu']]);
    assert.equal(engine.provider, 'cpu');
    await engine.close();
  });

  it('a batch of frames gives the same scores as single runs', async () => {
    const engine = await InferenceEngine.load({ modelDir: TINY_MODEL, providers: ['cpu'], maxBatch: 4, tensorrt: TRT }, silentLog());
    const bytes = SIZE * SIZE * 3;
    const frames = [0, 127, 255].map((v) => Buffer.alloc(bytes, v));
    frames[1][100] = 0; // one dark pixel: the map's max moves there
    const batch = await engine.run(frames);
    assert.equal(batch.scores.length, 3);
    assert.equal(batch.maps.length, 3 * SIZE * SIZE);
    for (let i = 0; i < 3; i++) {
      const single = await engine.run([frames[i]]);
      assert.ok(Math.abs(single.scores[0] - batch.scores[i]) < 1e-6);
    }
    // The tiny model's score is max over pixels of mean_c |x/255 - 0.5|.
    assert.ok(Math.abs(batch.scores[0] - 0.5) < 1e-6);
    assert.ok(Math.abs(batch.scores[1] - (Math.abs(0 - 0.5) + 2 * Math.abs(127 / 255 - 0.5)) / 3) < 1e-6);
    await engine.close();
  });

  it('a model with a fixed batch size lowers model.maxBatch instead of failing at run time', async () => {
    const cap = captureLog();
    const engine = await InferenceEngine.load(
      { modelDir: join(TINY_MODEL, '..', 'tiny-model-batch1'), providers: ['cpu'], maxBatch: 4, tensorrt: TRT },
      cap.log,
    );
    assert.equal(engine.maxBatch, 1);
    assert.ok(cap.messages().includes('model input has a fixed batch of 1: model.maxBatch lowered to 1'));
    await engine.close();
  });

  it('refuses a model whose file does not match the sha256 in model.json (names the file)', async () => {
    const dir = modelCopy();
    appendFileSync(join(dir, 'model.onnx'), 'x');
    await assert.rejects(
      InferenceEngine.load({ modelDir: dir, providers: ['cpu'], maxBatch: 1, tensorrt: TRT }, silentLog()),
      (e: Error) => e instanceof ModelError && e.message.includes(join(dir, 'model.onnx')) && e.message.includes('sha256'),
    );
  });

  it('refuses a model whose input size contradicts model.json, or a missing manifest', async () => {
    const dir = modelCopy((m) => {
      m.input.height = 32;
    });
    await assert.rejects(
      InferenceEngine.load({ modelDir: dir, providers: ['cpu'], maxBatch: 1, tensorrt: TRT }, silentLog()),
      (e: Error) => e instanceof ModelError && /wrong input contract/.test(e.message),
    );
    const dir2 = modelCopy((m) => {
      m.outputs.score = 'scores';
    });
    await assert.rejects(
      InferenceEngine.load({ modelDir: dir2, providers: ['cpu'], maxBatch: 1, tensorrt: TRT }, silentLog()),
      (e: Error) => e instanceof ModelError && /no output "scores"/.test(e.message),
    );
    await assert.rejects(
      InferenceEngine.load({ modelDir: '/nonexistent-model', providers: ['cpu'], maxBatch: 1, tensorrt: TRT }, silentLog()),
      (e: Error) => e instanceof ModelError && e.message.startsWith('/nonexistent-model/model.json'),
    );
  });
});

describe('FrameBatcher', () => {
  it('uses a single frame in place and packs several into one preallocated buffer', () => {
    const b = new FrameBatcher(2, 2, 3);
    const f1 = Buffer.alloc(12, 1);
    const one = b.pack([f1]);
    assert.equal(one.buffer, f1.buffer);
    const two = b.pack([f1, Buffer.alloc(12, 2)]);
    assert.equal(two.length, 24);
    assert.deepEqual([two[0], two[11], two[12], two[23]], [1, 1, 2, 2]);
    const again = b.pack([Buffer.alloc(12, 3), Buffer.alloc(12, 4)]);
    assert.equal(again.buffer, two.buffer, 'staging buffer must be reused, not reallocated');
    assert.throws(() => b.pack([Buffer.alloc(11)]), RangeError);
    assert.throws(() => b.pack([f1, f1, f1, f1]), RangeError);
  });
});
