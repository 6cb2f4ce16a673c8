/**
 * One model per camera (docs/configuration.md): the model set (one session per folder and content), the scheduler
 * (one batch per model per round), the pipeline's per-model batches, and the daemon with a bad model for one camera
 * and a model swap at SIGHUP. Real onnxruntime sessions on the tiny contract model and copies of it whose
 * model.json differs (name, normalization), so which model scored a frame shows in its result.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../src/config/load';
import type { CameraConfig, DaemonConfig } from '../../src/config/types';
import { Daemon } from '../../src/daemon';
import { Metrics } from '../../src/health/metrics';
import { ModelSet, modelKey } from '../../src/infer/models';
import { Pipeline } from '../../src/pipeline';
import { ModelScheduler } from '../../src/pipeline/schedule';
import { TestCamera, TestOutput } from './daemon-parts';
import { FakeCamera, silentLog, TINY_MODEL, until } from './helpers';

const TRT = { cacheDir: '/tmp/x', fp16: false };
let tmp = '';
/** A copy of the tiny model with another name and normalization (same graph): scores differ, raw scores do not. */
function variant(name: string, threshold: number): string {
  const dir = join(tmp, name);
  cpSync(TINY_MODEL, dir, { recursive: true });
  const m = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')) as Record<string, unknown>;
  m.name = name;
  m.version = `${name}-v1`;
  m.threshold = { raw: threshold };
  m.normalization = { method: 'minmax', threshold, min: 0, max: 0.5 };
  writeFileSync(join(dir, 'model.json'), JSON.stringify(m));
  return dir;
}
function brokenCopy(name: string): string {
  const dir = join(tmp, name);
  cpSync(TINY_MODEL, dir, { recursive: true });
  const f = join(dir, 'model.onnx');
  const b = readFileSync(f);
  b[b.length - 3] ^= 0x5a;
  writeFileSync(f, b);
  return dir;
}

before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'etstpm-models-'));
});
after(() => rmSync(tmp, { recursive: true, force: true }));

describe('ModelSet', () => {
  it('a folder named by several cameras is loaded once; closed when the last camera lets go', async () => {
    const loads: string[] = [];
    const set = new ModelSet({ providers: ['cpu'], maxBatch: 4, tensorrt: TRT }, silentLog(), async (o, l) => {
      loads.push(o.modelDir);
      const { InferenceEngine } = await import('../../src/infer/session');
      return InferenceEngine.load(o, l);
    });
    const other = variant('set-other', 0.2);
    const [a, b, c] = await Promise.all([set.acquire(TINY_MODEL, 'a'), set.acquire(TINY_MODEL, 'b'), set.acquire(other, 'c')]);
    assert.equal(a, b, 'same folder, same session');
    assert.notEqual(a, c);
    assert.equal(loads.length, 2);
    assert.deepEqual(set.info().map((m) => [m.name, m.cameras]).sort(), [['set-other', ['c']], ['tiny-contract-test', ['a', 'b']]]);
    await set.release(a, 'a');
    assert.equal(set.size, 2, 'still used by b');
    await set.release(b, 'b');
    assert.equal(set.size, 1, 'closed after the last camera');
    await set.closeAll();
  });

  it('the key follows the content of model.json; a load failure names the camera and the folder', async () => {
    const dir = variant('set-key', 0.3);
    const k1 = modelKey(dir);
    const m = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')) as { normalization: { max: number } };
    m.normalization.max = 0.9;
    writeFileSync(join(dir, 'model.json'), JSON.stringify(m));
    assert.notEqual(modelKey(dir), k1);
    const set = new ModelSet({ providers: ['cpu'], maxBatch: 4, tensorrt: TRT }, silentLog());
    const bad = brokenCopy('set-bad');
    await assert.rejects(set.acquire(bad, 'side'), (e: Error) => e.message.startsWith(`camera side: model folder ${bad}: `) && /sha256/.test(e.message));
    await assert.rejects(set.acquire(join(tmp, 'nope'), 'top'), (e: Error) => e.message.includes('camera top: model folder') && e.message.includes('model.json'));
    await set.closeAll();
  });
});

describe('ModelScheduler', () => {
  it('round-robin: one batch per model per round, models without work skipped', () => {
    const s = new ModelScheduler<string>('round-robin');
    const w = (...ms: string[]) => ms.map((model, i) => ({ model, oldest: i }));
    assert.deepEqual([s.pick(w('A', 'B', 'C')), s.pick(w('A', 'B', 'C')), s.pick(w('A', 'B', 'C')), s.pick(w('A', 'B', 'C'))], ['A', 'B', 'C', 'A']);
    assert.equal(s.pick(w('A', 'C')), 'C', 'B has nothing pending');
    assert.equal(s.pick(w('A')), 'A');
    s.forget('B');
    assert.deepEqual([s.pick(w('A', 'C')), s.pick(w('A', 'C'))], ['C', 'A']);
    assert.equal(s.pick([]), null);
  });

  it('oldest-first: the model with the oldest pending frame', () => {
    const s = new ModelScheduler<string>('oldest-first');
    assert.equal(s.pick([{ model: 'A', oldest: 5 }, { model: 'B', oldest: 3 }]), 'B');
    assert.equal(s.pick([{ model: 'A', oldest: 5 }, { model: 'B', oldest: 9 }]), 'A');
  });
});

describe('pipeline with two models', () => {
  it('frames are batched per model; each result, reject and snapshot names the model that scored it', async () => {
    const set = new ModelSet({ providers: ['cpu'], maxBatch: 4, tensorrt: TRT }, silentLog());
    const A = await set.acquire(TINY_MODEL, 'a1');
    const B = await set.acquire(variant('pipe-b', 0.1), 'b1');
    const results: Array<{ camera: string; model: string; score: number; rawScore: number }> = [];
    const rejects: Array<{ camera: string; model: string }> = [];
    const snaps: Array<Record<string, string>> = [];
    const sink = {
      connected: true,
      publishResult: (r: { camera: string; model: { name: string }; score: number; rawScore: number }) => (results.push({ camera: r.camera, model: r.model.name, score: r.score, rawScore: r.rawScore }), true),
      publishReject: (r: { camera: string; model: { name: string } }) => (rejects.push({ camera: r.camera, model: r.model.name }), true),
      publishSnapshot: (_c: string, _d: Buffer, _t: string, u: Record<string, string>) => (snaps.push(u), true),
    };
    const metrics = new Metrics();
    const p = new Pipeline(sink, metrics, { rejectDeadlineMs: 500, snapshot: { onNg: true, everyN: 0, format: 'jpeg', maxBytes: 262144 } }, silentLog());
    const cams = ['a1', 'a2', 'b1'].map((id) => new FakeCamera(id));
    p.addCamera(cams[0], A.engine);
    p.addCamera(cams[1], A.engine);
    p.addCamera(cams[2], B.engine);
    for (const c of cams) c.push(127); // raw 0.002: ok for both models (thresholds 0.45 and 0.1)
    cams[2].push(60); // b1's newest frame replaces its first: raw |60/255-0.5| = 0.265 >= 0.1: ng for B only
    p.start();
    await until(() => results.length === 3, 5000, 'three results');
    const batches = (await metrics.inferenceSeconds.get()).values.filter((v) => v.metricName === 'etstpm_inference_seconds_count');
    assert.deepEqual(batches.map((b) => [b.labels.model, b.labels.batch, b.value]).sort(), [['pipe-b', '1', 1], ['tiny-contract-test', '2', 1]]);
    const by = Object.fromEntries(results.map((r) => [r.camera, r]));
    assert.equal(by.a1.model, 'tiny-contract-test');
    assert.equal(by.a2.model, 'tiny-contract-test');
    assert.equal(by.b1.model, 'pipe-b');
    // B's normalization: (0.2647 - 0.1) / 0.5 + 0.5
    assert.ok(Math.abs(by.b1.score - ((Math.abs(60 / 255 - 0.5) - 0.1) / 0.5 + 0.5)) < 1e-5, `b1 score ${by.b1.score}`);
    assert.deepEqual(rejects, [{ camera: 'b1', model: 'pipe-b' }]);
    await until(() => snaps.length === 1, 5000, 'snapshot');
    assert.equal(snaps[0].model, 'pipe-b');
    // In place swap: a2 now scored by B.
    p.setModel('a2', B.engine);
    cams[1].push(60);
    await until(() => results.length === 4, 5000, 'fourth result');
    assert.equal(results[3].model, 'pipe-b');
    await p.stop();
    await set.closeAll();
  });
});

function daemonConfig(cameras: Array<Partial<CameraConfig> & { id: string }>): DaemonConfig {
  const r = loadConfig({
    argv: ['--http-port', '0', '--model-dir', TINY_MODEL, '--model-providers', 'cpu', '--cameras', JSON.stringify(cameras.map((c) => ({ url: 'synthetic://', ...c })))],
    env: {},
  });
  assert.equal(r.kind, 'ok', JSON.stringify(r));
  return (r as { config: DaemonConfig }).config;
}

function parts() {
  const out = new TestOutput();
  const cams = new Map<string, TestCamera>();
  const deps = {
    env: {},
    publisher: () => out,
    camera: (cfg: CameraConfig, size: { width: number; height: number }) => {
      const c = new TestCamera(cfg);
      c.size = size;
      cams.set(cfg.id, c);
      return c;
    },
  };
  return { out, cams, deps };
}

describe('daemon: one model per camera', () => {
  it('a bad model for one camera: that camera reports it, /healthz names it, the other scores', async () => {
    const bad = brokenCopy('d-bad');
    const { out, cams, deps } = parts();
    const d = new Daemon(daemonConfig([{ id: 'top' }, { id: 'side', model: bad }]), silentLog(), deps);
    try {
      await d.start();
      out.setConnected(true);
      await until(() => d.ready, 5000, 'ready');
      assert.equal(cams.has('side'), false, 'no decoder opened for a camera without a model');
      cams.get('top')?.push(127);
      await until(() => out.results.length === 1, 5000, 'top scores');
      const side = out.statuses.filter((s) => s.camera === 'side').at(-1);
      assert.equal(side?.state, 'failed');
      assert.match(side?.modelError ?? '', new RegExp(`^camera side: model folder ${bad}: .*sha256`));
      const h = d.health();
      assert.equal(h.ok, false);
      assert.match(h.reason ?? '', /camera without a model: side \(camera side: model folder/);
      assert.deepEqual((h.models as Array<{ cameras: string[] }>).map((m) => m.cameras), [['top']]);
    } finally {
      await d.stop();
    }
  });

  it('every camera without a loadable model: start fails with ModelError naming camera and folder', async () => {
    const bad = brokenCopy('d-bad2');
    const { deps } = parts();
    const d = new Daemon(daemonConfig([{ id: 'top', model: bad }]), silentLog(), deps);
    await assert.rejects(d.start(), (e: Error) => e.name === 'ModelError' && e.message.includes(`camera top: model folder ${bad}`));
    await d.stop();
  });

  it('SIGHUP: one camera swaps model in place, a failed swap keeps the old one, the other camera is untouched', async () => {
    const b1 = variant('d-b1', 0.3);
    const { out, cams, deps } = parts();
    const cfg = daemonConfig([{ id: 'top' }, { id: 'side', model: b1 }]);
    const d = new Daemon(cfg, silentLog(), deps);
    try {
      await d.start();
      out.setConnected(true);
      await until(() => d.ready, 5000, 'ready');
      const top = cams.get('top') as TestCamera;
      const side = cams.get('side') as TestCamera;
      side.push(127);
      await until(() => out.results.some((r) => r.camera === 'side'), 5000, 'side result');
      assert.equal(out.results.find((r) => r.camera === 'side')?.model.name, 'd-b1');
      // Swap: new content behind the same folder (what update-model.sh --camera does with its link).
      const m = JSON.parse(readFileSync(join(b1, 'model.json'), 'utf8')) as Record<string, unknown>;
      m.name = 'd-b2';
      writeFileSync(join(b1, 'model.json'), JSON.stringify(m));
      const r = await d.reloadCameras(cfg.cameras);
      assert.deepEqual(r.swapped, ['side']);
      assert.equal(cams.get('side'), side, 'same input size: swapped in place, decoder not restarted');
      assert.equal(cams.get('top'), top);
      side.push(127);
      top.push(127);
      await until(() => out.results.filter((x) => x.camera === 'side').length === 2 && out.results.some((x) => x.camera === 'top'), 5000, 'results after the swap');
      assert.equal(out.results.filter((x) => x.camera === 'side')[1].model.name, 'd-b2');
      assert.equal(out.results.find((x) => x.camera === 'top')?.model.name, 'tiny-contract-test');
      assert.deepEqual(d.models?.info().map((x) => x.name).sort(), ['d-b2', 'tiny-contract-test'], 'd-b1 unloaded');
      // A broken new model for side: it keeps d-b2 and says why; healthy (still inspecting).
      const bad = brokenCopy('d-bad3');
      const r2 = await d.reloadCameras(cfg.cameras.map((c) => (c.id === 'side' ? { ...c, model: bad } : c)));
      assert.deepEqual(r2.modelFailed, ['side']);
      side.push(127);
      await until(() => out.results.filter((x) => x.camera === 'side').length === 3, 5000, 'side still scores');
      assert.equal(out.results.filter((x) => x.camera === 'side')[2].model.name, 'd-b2');
      const st = d.cameraStatus(side);
      assert.deepEqual(st.model.name, 'd-b2');
      assert.match(st.modelError ?? '', new RegExp(`camera side: model folder ${bad}: .*sha256`));
      assert.match(JSON.stringify(d.health().modelErrors), /camera side: model folder/);
    } finally {
      await d.stop();
    }
  });
});
