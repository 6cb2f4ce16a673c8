// Parity (docs/testing.md, "Parity"): real test images (hazelnut_toy from ../shared) streamed through a real RTSP server
// into the daemon must score as the training toolkit scores them offline with the same model.
//
// The model is a real (tiny) ET-STPM trained and exported by the toolkit's CLI (`etstpm train` 1 epoch, 16 images,
// 64 px; `etstpm export`), evaluated by `etstpm evaluate`. What is compared:
//   - image AUROC and the verdict counts at the model's threshold: daemon results vs `etstpm evaluate` (PyTorch);
//   - per image raw score: daemon vs the exported ONNX run offline by onnxruntime (python) on the toolkit's
//     preprocessing (PIL decode, convert RGB, bilinear resize); `etstpm evaluate`'s per-image scores (images[].score)
//     come from PyTorch, so the offline ONNX run is the reference for the exported graph.
// How the comparison is kept honest:
//   - the stream is lossless: RFC 4175 raw RGB over RTP (test/fixtures/rtsp_server.py --codec raw), verified
//     bit-exact in fixtures.test.ts. H.264, even at qp 0, changes pixels through RGB<->YUV rounding;
//   - images are decoded once by PIL and stored as PNG, so both sides start from identical pixels (JPEG decoders
//     differ: GStreamer's jpegdec uses a faster IDCT);
//   - test 1 pre-resizes to the model size with PIL (the toolkit's own resize), so neither side resizes: the only
//     differences left are float arithmetic (onnxruntime-node vs onnxruntime python vs PyTorch). Tolerance 1e-4
//     relative, and AUROC / verdicts must be identical;
//   - test 2 streams the images at their native 512 px: the daemon resizes with ffmpeg (swscale), the toolkit with
//     PIL. That difference is inherent to two resamplers; the test measures it and bounds it (see constants).
// Frame-to-image matching: fixed image order, each held for HOLD frames, lossless so one image = one run of equal
// raw scores (the daemon scores only the first frame of a hold: the others are byte-identical repeats); runs are
// aligned to the order by one cyclic offset (helpers/parity.ts), never by nearest score.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ETSTPM_CLI, FIXTURES, SHARED, VENV_PYTHON, missing, tmpDir } from './helpers/env';
import { Harness, ResultMsg } from './helpers/harness';
import { ModelManifest, readManifest } from './helpers/model';
import { align, auroc, toRuns } from './helpers/parity';
import { waitFor } from './helpers/wait';

const skip = missing('daemon', 'venv', 'etstpm', 'mosquitto', 'ffmpeg', 'rtsp-server', 'shared');
const CATEGORY = 'hazelnut_toy';
const SIZE = 64;
const STRICT_REL_TOL = 1e-4;       // presized: float arithmetic only
const NATIVE_REL_TOL = 0.05;       // native size: ffmpeg vs PIL resampling, per-image raw score
const NATIVE_AUROC_TOL = 0.05;

interface Frame { path: string; defect: string; label: number; offline_score: number }
interface Eval { image_auroc: number; verdict: { threshold_raw: number; false_rejects: number; detected: number; n_good: number; n_defective: number } }

describe('parity: daemon over RTSP vs etstpm (toolkit) offline', { skip }, () => {
  const tmp = tmpDir('etstpm-parity-');
  let modelDir = '';
  let runDir = '';
  let manifest: ModelManifest;
  const data = join(SHARED, 'data', CATEGORY);
  const weights = join(SHARED, 'weights', 'resnet18_imagenet1k_v1_bnfolded_conv1-layer3_fc.pth');

  before(() => {
    if (skip) return;
    runDir = join(tmp.dir, 'run');
    modelDir = join(tmp.dir, 'model');
    const opts = { stdio: ['ignore', 'ignore', 'pipe'] as ['ignore', 'ignore', 'pipe'], timeout: 300000 };
    const t0 = Date.now();
    execFileSync(ETSTPM_CLI, ['train', '--data', data, '--category', CATEGORY, '--weights', weights, '--out', runDir,
      '--epochs', '1', '--image-size', String(SIZE), '--max-train-images', '16', '--finetune', 'none', '--seed', '0',
      '--device', 'cpu', '--no-progress'], opts);
    execFileSync(ETSTPM_CLI, ['export', '--run', runDir, '--out', modelDir], opts);
    manifest = readManifest(modelDir);
    process.stderr.write(`# parity: etstpm train + export took ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  });
  after(() => tmp.remove());

  function prepare(name: string, presize: boolean): { frames: Frame[]; evaluation: Eval; root: string } {
    const root = join(tmp.dir, name);
    const t0 = Date.now();
    execFileSync(VENV_PYTHON, [join(FIXTURES, 'prepare_parity_data.py'), '--src', data, '--category', CATEGORY,
      '--out', root, '--model', modelDir, ...(presize ? ['--size', String(SIZE)] : [])], { stdio: ['ignore', 'ignore', 'pipe'] });
    execFileSync(ETSTPM_CLI, ['evaluate', '--run', runDir, '--data', root, '--category', CATEGORY,
      '--json', join(root, 'eval.json'), '--device', 'cpu', '--no-progress'], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 300000 });
    const frames = (JSON.parse(readFileSync(join(root, 'frames.json'), 'utf8')) as { frames: Frame[] }).frames;
    const evaluation = JSON.parse(readFileSync(join(root, 'eval.json'), 'utf8')) as Eval;
    process.stderr.write(`# parity ${name}: data + offline scores + etstpm evaluate took ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
    return { frames, evaluation, root };
  }

  async function streamThroughDaemon(frames: Frame[], relTol: number, fps: number, hold: number) {
    const h = new Harness();
    try {
      h.model = { dir: modelDir, manifest };
      await h.startBroker();
      const cam = await h.camera({ images: frames.map((f) => f.path), codec: 'raw', fps, hold, size: undefined });
      h.daemon(await h.config([{ id: 'parity', url: cam.url }], { ingest: { stallTimeoutMs: 5000 } }));
      const reference = frames.map((f) => f.offline_score);
      const t0 = Date.now();
      let last = '';
      // A liveness bound, not a speed claim: the native-size loop once needed more than 120 s to cover all
      // 23 images while other jobs kept both cores busy.
      const alignment = await waitFor('every streamed image matched to a daemon result run', () => {
        const rs = h.mqtt.json<ResultMsg>(h.topic('parity', 'result'));
        const runs = toRuns(rs).slice(1, -1); // first/last run may be cut by start/stop; both are seen again
        const a = align(runs, reference, relTol);
        last = `${rs.length} results, ${runs.length} runs, alignment ${a ? `offset ${a.offset}, skipped ${a.skipped}` : 'none'}`;
        if (!a) return false;
        return new Set(a.images).size === frames.length ? { a, runs, rs } : false;
      }, 240000, 250).catch((e) => { throw new Error(`${String(e)}; last state: ${last}`); });
      process.stderr.write(`# parity: streaming until every image was matched took ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
      return alignment;
    } finally {
      await h.close();
    }
  }

  function daemonScores(n: number, a: { images: number[] }, runs: Array<{ raw: number }>): number[] {
    const out = new Array<number>(n).fill(NaN);
    a.images.forEach((img, i) => { if (Number.isNaN(out[img])) out[img] = runs[i].raw; });
    return out;
  }

  test(`presized to ${SIZE} px (no resize anywhere): same scores (1e-4), same AUROC and verdicts as etstpm evaluate`, async () => {
    const { frames, evaluation } = prepare('presized', true);
    const { a, runs } = await streamThroughDaemon(frames, STRICT_REL_TOL, 15, 2);
    const daemon = daemonScores(frames.length, a, runs);
    const labels = frames.map((f) => f.label);
    const diffs = frames.map((f, i) => Math.abs(daemon[i] - f.offline_score) / Math.abs(f.offline_score));
    assert.ok(Math.max(...diffs) <= STRICT_REL_TOL, `max relative score difference ${Math.max(...diffs)}`);
    // offline ONNX (python) and the toolkit (PyTorch) agree
    assert.equal(auroc(labels, frames.map((f) => f.offline_score)), evaluation.image_auroc);
    const daemonAuroc = auroc(labels, daemon);
    assert.equal(daemonAuroc, evaluation.image_auroc, 'image AUROC from daemon scores = etstpm evaluate');
    const thr = evaluation.verdict.threshold_raw;
    assert.equal(thr, manifest.threshold.raw);
    assert.equal(labels.filter((l, i) => l === 0 && daemon[i] >= thr).length, evaluation.verdict.false_rejects);
    assert.equal(labels.filter((l, i) => l === 1 && daemon[i] >= thr).length, evaluation.verdict.detected);
    process.stderr.write(`# parity presized: ${frames.length} images, ${runs.length} runs aligned (skipped ${a.skipped}), `
      + `max rel diff ${Math.max(...diffs).toExponential(2)}, AUROC daemon ${daemonAuroc.toFixed(4)} = evaluate `
      + `${evaluation.image_auroc.toFixed(4)}\n`);
  });

  test('native 512 px (daemon resizes with ffmpeg, toolkit with PIL): bounded score difference, AUROC within bound', async () => {
    const { frames, evaluation } = prepare('native', false);
    const { a, runs } = await streamThroughDaemon(frames, NATIVE_REL_TOL, 8, 2);
    const daemon = daemonScores(frames.length, a, runs);
    const labels = frames.map((f) => f.label);
    const diffs = frames.map((f, i) => Math.abs(daemon[i] - f.offline_score) / Math.abs(f.offline_score));
    const daemonAuroc = auroc(labels, daemon);
    process.stderr.write(`# parity native 512->${SIZE}: max rel score diff ${Math.max(...diffs).toExponential(2)}, `
      + `mean ${(diffs.reduce((s, d) => s + d, 0) / diffs.length).toExponential(2)}; AUROC daemon ${daemonAuroc.toFixed(4)} `
      + `vs evaluate ${evaluation.image_auroc.toFixed(4)}\n`);
    assert.ok(Math.max(...diffs) <= NATIVE_REL_TOL, `max relative score difference ${Math.max(...diffs)}`);
    assert.ok(Math.abs(daemonAuroc - evaluation.image_auroc) <= NATIVE_AUROC_TOL, 'AUROC within bound');
  });
});
