// One model per camera (docs/configuration.md, "One model per camera"): two real RTSP cameras, two real models side by
// side in one daemon, each camera's results matched against its own model's offline scores; then a broken model for
// one camera at SIGHUP (it keeps its model and says why, the other keeps scoring) and a model swap for one camera.
//
// Models: the demo model (models/demo, ET-STPM, 256 px) and a memory-bank model trained and exported here by the
// toolkit's CLI from the small shared hazelnut_toy set (128 px, `etstpm train --method membank`, under a minute).
// Cameras: "top" streams the hazelnut test images presized to 128 px, "side" the same images presized (PIL) to
// 256 px, both lossless (raw RTP) so each daemon score can be compared with onnxruntime (python) on the same pixels
// (test/fixtures/prepare_parity_data.py), with the parity test's alignment (helpers/parity.ts).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ETSTPM_CLI, FIXTURES, REPO, SHARED, VENV_PYTHON, missing, tmpDir } from './helpers/env';
import { CameraStatus, Harness, ResultMsg } from './helpers/harness';
import { ModelManifest, readManifest, sha256MismatchCopy } from './helpers/model';
import { align, toRuns } from './helpers/parity';
import { waitFor } from './helpers/wait';

const skip = missing('daemon', 'venv', 'etstpm', 'mosquitto', 'ffmpeg', 'rtsp-server', 'shared');
const CATEGORY = 'hazelnut_toy';
const STRICT_REL_TOL = 1e-4; // no resize anywhere: float arithmetic only (as parity.test.ts)
const RESIZE_REL_TOL = 0.05; // after the swap the daemon upscales 128 -> 256 with ffmpeg, the reference with PIL
const MATCH_MS = 300000;     // liveness bound: every image matched on both cameras, on a loaded 2-core machine
const EVENT_MS = 60000;

interface Frame { path: string; offline_score: number }

describe('one model per camera: two RTSP cameras, two real models', { skip }, () => {
  const tmp = tmpDir('etstpm-permodel-');
  const demoDir = join(REPO, 'models', 'demo');
  let hzDir = '';
  let hz: ModelManifest;
  let demo: ModelManifest;
  let top: Frame[] = [];   // 128 px, offline scores of the hazelnut model
  let side: Frame[] = [];  // 256 px (PIL from the 128 px images), offline scores of the demo model
  const h = new Harness();

  before(() => {
    if (skip) return;
    const data = join(SHARED, 'data', CATEGORY);
    const weights = join(SHARED, 'weights', 'resnet18_imagenet1k_v1_bnfolded_conv1-layer3_fc.pth');
    const opts = { stdio: ['ignore', 'ignore', 'pipe'] as ['ignore', 'ignore', 'pipe'], timeout: 300000 };
    const t0 = Date.now();
    hzDir = join(tmp.dir, 'hz-model');
    execFileSync(ETSTPM_CLI, ['train', '--data', data, '--category', CATEGORY, '--weights', weights, '--out', join(tmp.dir, 'run'),
      '--method', 'membank', '--image-size', '128', '--seed', '0', '--device', 'cpu', '--no-progress'], opts);
    execFileSync(ETSTPM_CLI, ['export', '--run', join(tmp.dir, 'run'), '--out', hzDir], opts);
    hz = readManifest(hzDir);
    demo = readManifest(demoDir);
    const prep = (src: string, out: string, size: number, model: string): Frame[] => {
      execFileSync(VENV_PYTHON, [join(FIXTURES, 'prepare_parity_data.py'), '--src', src, '--category', CATEGORY, '--out', out,
        '--size', String(size), '--model', model], opts);
      return (JSON.parse(readFileSync(join(out, 'frames.json'), 'utf8')) as { frames: Frame[] }).frames;
    };
    top = prep(data, join(tmp.dir, 'd128'), 128, hzDir);
    side = prep(join(tmp.dir, 'd128'), join(tmp.dir, 'd256'), 256, demoDir);
    process.stderr.write(`# permodel: train + export + offline scores took ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  });
  after(async () => {
    await h.close();
    tmp.remove();
  });

  const results = (cam: string, since = 0): ResultMsg[] => h.mqtt.json<ResultMsg>(h.topic(cam, 'result'), since);
  /** Waits until every image of `frames` is matched to a run of `cam`'s results (received from `since` on). */
  const matched = (cam: string, frames: Frame[], relTol: number, since = 0) => {
    const ref = frames.map((f) => f.offline_score);
    let last = '';
    return h.explain(waitFor(`every image of ${cam} matched to its model's offline score`, () => {
      const rs = results(cam, since);
      const runs = toRuns(rs).slice(1, -1);
      const a = align(runs, ref, relTol);
      last = `${rs.length} results, ${runs.length} runs, ${a ? `skipped ${a.skipped}, max rel diff ${a.maxRelDiff.toExponential(2)}` : 'no alignment'}`;
      return a && new Set(a.images).size === frames.length ? { a, runs, rs } : false;
    }, MATCH_MS, 250).catch((e) => { throw new Error(`${String(e)}; last state: ${last}`); }));
  };
  type Status = CameraStatus & { modelError?: string };
  // A camera restarted for a new input size is removed and added again: its retained status is cleared (empty
  // payload) in between, which is skipped here.
  const status = (cam: string, pred: (s: Status) => boolean, since = 0, what = '') =>
    h.explain(waitFor(`${cam} status ${what}`, () => h.mqtt.on(h.topic(cam, 'status'), since).filter((m) => m.payload.length > 0)
      .map((m) => JSON.parse(m.payload.toString('utf8')) as Status).find(pred), EVENT_MS));

  test('each camera scores with its own model; a broken new model for one camera; a model swap for one camera', async () => {
    await h.startBroker();
    const camTop = await h.camera({ images: top.map((f) => f.path), codec: 'raw', fps: 4, hold: 2, size: undefined });
    const camSide = await h.camera({ images: side.map((f) => f.path), codec: 'raw', fps: 4, hold: 2, size: undefined, mount: '/side' });
    h.model = { dir: demoDir, manifest: demo };
    const cfg = await h.config([{ id: 'top', url: camTop.url, model: hzDir }, { id: 'side', url: camSide.url }], { ingest: { stallTimeoutMs: 5000 } }, true);
    const d = h.daemon(cfg);
    const port = (cfg.http as { port: number }).port;

    // 1. Side by side: each camera's scores are its own model's offline scores (1e-4), and not the other model's.
    const t0 = Date.now();
    const [mt, ms] = await Promise.all([matched('top', top, STRICT_REL_TOL), matched('side', side, STRICT_REL_TOL)]);
    process.stderr.write(`# permodel: both cameras matched in ${((Date.now() - t0) / 1000).toFixed(1)} s: top max rel diff `
      + `${mt.a.maxRelDiff.toExponential(2)}, side ${ms.a.maxRelDiff.toExponential(2)}\n`);
    assert.equal(align(mt.runs, side.map((f) => f.offline_score), RESIZE_REL_TOL), null, "top's scores are not the demo model's");
    assert.ok(mt.rs.every((r) => r.model.name === hz.name && r.model.version === hz.version), 'top results name the hazelnut model');
    assert.ok(ms.rs.every((r) => r.model.name === demo.name && r.model.version === demo.version), 'side results name the demo model');
    await status('top', (s) => s.model.name === hz.name && s.state === 'streaming');
    await status('side', (s) => s.model.name === demo.name && s.state === 'streaming');
    const health = await (await fetch(`http://127.0.0.1:${port}/healthz`)).json() as { ok: boolean; models: Array<{ name: string; sha256: string; cameras: string[] }> };
    assert.equal(health.ok, true, JSON.stringify(health));
    assert.deepEqual(health.models.map((m) => [m.name, m.sha256, m.cameras]).sort(),
      [[demo.name, demo.onnx.sha256, ['side']], [hz.name, hz.onnx.sha256, ['top']]].sort());
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    for (const m of [hz, demo]) {
      assert.match(metrics, new RegExp(`etstpm_inference_seconds_count\\{[^}]*model="${m.name}"[^}]*\\} [1-9]`), `inference time of ${m.name} in /metrics`);
    }

    // 2. SIGHUP with a broken model (sha256 mismatch) for side: side keeps the demo model and says why; top untouched.
    const bad = sha256MismatchCopy(demoDir, join(h.dir, 'bad-model'));
    const cams = (over: Record<string, string>) => [{ id: 'top', url: camTop.url, model: over.top ?? hzDir }, { id: 'side', url: camSide.url, model: over.side ?? demoDir }];
    writeFileSync(d.configFile, JSON.stringify({ ...cfg, cameras: cams({ side: bad }) }));
    const mark2 = Date.now();
    d.proc.signal('SIGHUP');
    const st = await status('side', (s) => (s.modelError ?? '').includes(bad), mark2, 'side reports the failed model');
    assert.match(st.modelError ?? '', /^camera side: model folder .*sha256/);
    assert.equal(st.model.name, demo.name, 'side keeps its model');
    await h.explain(waitFor('side and top keep scoring with their models', () =>
      results('side', mark2).filter((r) => r.model.name === demo.name).length >= 6
      && results('top', mark2).filter((r) => r.model.name === hz.name).length >= 6, EVENT_MS));
    assert.ok(results('side', mark2).every((r) => r.model.name === demo.name));

    // 3. Swap top to the demo model (another input size: its decoder restarts at 256 px); side unchanged.
    writeFileSync(d.configFile, JSON.stringify({ ...cfg, cameras: cams({ top: demoDir }) }));
    const mark3 = Date.now();
    d.proc.signal('SIGHUP');
    await status('top', (s) => s.model.name === demo.name, mark3, 'top on the demo model');
    await status('side', (s) => s.modelError === undefined && s.model.name === demo.name, mark3, 'side: error cleared');
    const swapped = Date.now();
    const mt2 = await matched('top', side, RESIZE_REL_TOL, swapped);
    assert.ok(mt2.rs.every((r) => r.model.name === demo.name), 'top results after the swap name the demo model');
    process.stderr.write(`# permodel: after the swap top matches the demo model's scores, max rel diff ${mt2.a.maxRelDiff.toExponential(2)} (ffmpeg vs PIL upscale)\n`);
    assert.ok(results('side', swapped).length > 0 && results('side', swapped).every((r) => r.model.name === demo.name), 'side kept scoring');
    const h3 = await (await fetch(`http://127.0.0.1:${port}/healthz`)).json() as { ok: boolean; models: Array<{ name: string; cameras: string[] }> };
    assert.deepEqual(h3.models.map((m) => [m.name, m.cameras]), [[demo.name, ['side', 'top']]], 'one shared session; the hazelnut model unloaded');
  });
});
