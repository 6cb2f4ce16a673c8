// No invented frames (docs/daemon.md): the daemon never scores an invented, repeated or frozen frame as if it were new, and follows a camera
// whose stream changes size or codec. Real gst-rtsp-server cameras (test/fixtures/rtsp_server.py), real ffmpeg,
// real mosquitto, real onnxruntime.
//
// Frame identity: the test images are uniform colours (one RGB triple per image, all different). Scaling a uniform
// image gives the same triple exactly, and the raw RTP stream is lossless, so the daemon's model input for image k
// is known without any resampler: the expected raw score of image k is computed here with onnxruntime-node on a
// uniform frame, and every published result is mapped back to the image it scored.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { missing, SHARED, tmpDir } from './helpers/env';
import { CameraStatus, GRID_GOOD, Harness, ResultMsg } from './helpers/harness';
import { alwaysNgCopy, makeTestModel, ModelManifest } from './helpers/model';
import { waitFor } from './helpers/wait';

const START_MS = 45000;   // daemon start to first result on a loaded 2-core machine
const FAULT_MS = 20000;   // a fault shows on the status topic (frozen timeout is 3 s here)
const RESUME_MS = 20000;  // liveness bound for resuming; the time it really took is printed
const SIZE = 64;
const N_IMAGES = 8;

const skip = missing('daemon', 'venv', 'mosquitto', 'ffmpeg', 'rtsp-server', 'shared');
const models = tmpDir('etstpm-it-rel-');
let model: { dir: string; manifest: ModelManifest };
let ngModel: { dir: string; manifest: ModelManifest };
const colours = Array.from({ length: N_IMAGES }, (_, k) => {
  const l = 16 + k * 28;
  return [l, (l * 3) % 256, 255 - l] as const;
});
const reference: number[] = [];

/** Uniform images as binary PPM (the RTSP fixture decodes them with GStreamer). */
function writeImages(dir: string, width: number, height: number): string {
  mkdirSync(dir, { recursive: true });
  colours.forEach((c, k) => {
    const px = Buffer.alloc(width * height * 3);
    for (let i = 0; i < px.length; i += 3) px.set(c, i);
    writeFileSync(join(dir, `${String(k).padStart(2, '0')}.ppm`), Buffer.concat([Buffer.from(`P6\n${width} ${height}\n255\n`), px]));
  });
  return dir;
}

before(async () => {
  if (skip) return;
  model = makeTestModel(join(models.dir, 'model'), { size: SIZE });
  ngModel = alwaysNgCopy(model.dir, join(models.dir, 'ng'));
  const session = await ort.InferenceSession.create(join(model.dir, 'model.onnx'));
  for (const c of colours) {
    const frame = new Uint8Array(SIZE * SIZE * 3);
    for (let i = 0; i < frame.length; i += 3) frame.set(c, i);
    const out = await session.run({ frames: new ort.Tensor('uint8', frame, [1, SIZE, SIZE, 3]) });
    reference.push((out.score.data as Float32Array)[0]);
  }
  await session.release();
  // Precondition of the mapping: every image has its own score.
  const sorted = [...reference].sort((a, b) => a - b);
  for (let i = 1; i < sorted.length; i++) assert.ok(sorted[i] - sorted[i - 1] > 1e-3 * Math.abs(sorted[i]), `reference scores too close: ${reference}`);
});
after(() => models.remove());

/** Image index a raw score belongs to (relative tolerance 1e-4: float arithmetic only), or -1. */
function imageOf(raw: number): number {
  return reference.findIndex((r) => Math.abs(raw - r) <= 1e-4 * Math.abs(r));
}

const results = (h: Harness, cam: string, since = 0): ResultMsg[] => h.mqtt.json<ResultMsg>(h.topic(cam, 'result'), since);
const statuses = (h: Harness, cam: string, since = 0): CameraStatus[] => h.mqtt.json<CameraStatus>(h.topic(cam, 'status'), since);
const waitStatus = (h: Harness, cam: string, pred: (s: CameraStatus) => boolean, ms: number, since = 0, what = '') =>
  h.explain(h.mqtt.waitJson<CameraStatus>(h.topic(cam, 'status'), pred, ms, since, what));
const waitResults = (h: Harness, cam: string, n: number, ms: number, since = 0) =>
  h.explain(waitFor(`${n} results from ${cam} since ${since}`, () => results(h, cam, since).length >= n, ms));

/** Every result scored one of the images, none twice in a row, in stream order (skips allowed: backpressure). */
function assertDistinctInOrder(rs: ResultMsg[]): number[] {
  const idx = rs.map((r) => imageOf(r.rawScore));
  assert.ok(idx.every((k) => k >= 0), `every result scores one of the streamed images: ${rs.map((r) => r.rawScore).join(', ')}`);
  for (let i = 1; i < idx.length; i++) {
    const step = (idx[i] - idx[i - 1] + N_IMAGES) % N_IMAGES;
    assert.ok(step !== 0, `result ${i} (seq ${rs[i].seq}) scored image ${idx[i]} again: a repeated frame was scored`);
    assert.ok(step <= N_IMAGES / 2, `result ${i} went from image ${idx[i - 1]} to ${idx[i]}: out of stream order`);
    assert.ok(rs[i].seq > rs[i - 1].seq, 'seq increases');
  }
  return idx;
}

describe('ingest reliability with real RTSP cameras', { skip }, () => {
  test('uncompressed 320x427 stream (410 KB frames), camera fps 0: every result is a distinct source frame, in order; no frame invented', async () => {
    const h = new Harness();
    try {
      h.model = model;
      await h.startBroker();
      const images = writeImages(join(h.dir, 'odd'), 320, 427);
      const cam = await h.camera({ images: [images], codec: 'raw', fps: 5, hold: 1, size: '320x427', reportFrames: true });
      const d = h.daemon(await h.config([{ id: 'raw', url: cam.url }]));
      await waitResults(h, 'raw', 25, START_MS);
      const idx = assertDistinctInOrder(results(h, 'raw'));
      // Frames out of the decoder (scored or not) never outnumber the frames the camera sent: read the daemon's
      // count first, then the camera's next report (which is later, so it covers every frame counted before).
      const st = await waitStatus(h, 'raw', (s) => s.captured > 0, FAULT_MS, Date.now(), 'a fresh status');
      const pushedBefore = cam.pushed;
      await waitFor('the camera reports its frame count again', () => cam.pushed > pushedBefore, 10000);
      assert.ok(st.captured + st.repeated <= cam.pushed, `decoder frames ${st.captured} + ${st.repeated} > frames sent ${cam.pushed}`);
      assert.equal(st.repeated, 0, 'no two consecutive frames of this stream are identical');
      assert.ok(d.proc.lines.some((l) => /source stream rawvideo 320x427/.test(l)), 'the source format is logged');
      assert.ok(!d.proc.lines.some((l) => /frames duplicated/i.test(l)), 'ffmpeg duplicated frames');
      process.stderr.write(`# raw 320x427 fps 0: ${results(h, 'raw').length} results, images ${idx.slice(0, 16).join(' ')}...; `
        + `decoder frames ${st.captured + st.repeated} <= sent ${cam.pushed}\n`);
    } finally {
      await h.close();
    }
  });

  test('frozen camera (same image again and again): frozen on the status topic, /healthz 503, metrics, log; no results; decoder restarted; recovers', async () => {
    const h = new Harness();
    try {
      h.model = model;
      await h.startBroker();
      const cam = await h.camera({ images: [GRID_GOOD()], codec: 'raw', fps: 5, size: '128x128' });
      const cfg = await h.config([{ id: 'frz', url: cam.url }], { ingest: { frozenTimeoutMs: 3000 } }, true);
      const port = (cfg.http as { port: number }).port;
      const d = h.daemon(cfg);
      await waitResults(h, 'frz', 5, START_MS);
      const clients = cam.clients;
      await cam.freeze();
      const frozeAt = Date.now();
      const st = await waitStatus(h, 'frz', (s) => s.state === 'frozen', FAULT_MS, frozeAt, 'frozen');
      assert.match(st.error ?? '', /image unchanged for \d+(\.\d)? s \(\d+ repeated frames\)/);
      assert.ok(st.repeated > 0);
      const health = await fetch(`http://127.0.0.1:${port}/healthz`);
      const body = await health.text();
      assert.equal(health.status, 503, body);
      assert.match(body, /frz=frozen|frozen: frz/, "the reason names the frozen camera");
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      assert.match(metrics, /etstpm_camera_state\{camera="frz",state="frozen"\} 1/);
      const rep = /etstpm_frames_repeated_total\{camera="frz"\} (\d+)/.exec(metrics);
      assert.ok(rep && Number(rep[1]) > 0, 'repeated frames counted');
      assert.ok(d.proc.lines.some((l) => /frozen, restarting decoder/.test(l) && /unchangedMs/.test(l)), 'log line with the reason');
      // The decoder is restarted (a new RTSP session); the camera still sends the same image, so it stays frozen.
      await waitFor('a new RTSP session', () => cam.clients > clients, FAULT_MS);
      await waitFor('a later frozen status', () => statuses(h, 'frz').filter((s) => s.state === 'frozen').length >= 2, FAULT_MS);
      // Results stop: none for a frame captured after the freeze (2 s for frames already on their way).
      const stale = results(h, 'frz').filter((r) => r.capturedAt > frozeAt + 2000);
      assert.deepEqual(stale.map((r) => r.seq), [], 'no result for a frozen image');
      assert.ok(d.running);
      const unAt = Date.now();
      await cam.unfreeze();
      await waitStatus(h, 'frz', (s) => s.state === 'streaming', RESUME_MS, unAt, 'streaming again');
      await waitResults(h, 'frz', 3, RESUME_MS, unAt);
      await waitFor('/healthz 200 again', async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).status === 200, RESUME_MS);
      process.stderr.write(`# frozen after ${st.since - frozeAt} ms (timeout 3000 ms); first result ${results(h, 'frz', unAt)[0].capturedAt - unAt} ms after unfreezing\n`);
    } finally {
      await h.close();
    }
  });

  test('H.264 freeze (x264, GOP 5, 1000 kbps, 5 fps: decodes to a cycle of slightly different frames): frozen within the timeout, no repeated results or rejects, streaming again after unfreezing', async () => {
    const h = new Harness();
    try {
      h.model = ngModel; // every frame NG: each scored frame is also a reject
      await h.startBroker();
      const grid = join(SHARED, 'data/mvtec_grid_subset/grid/train/good');
      const cam = await h.camera({ images: [grid], codec: 'h264', fps: 5, gop: 5, kbps: 1000, size: '256x256' });
      const cfg = await h.config([{ id: 'h264', url: cam.url }], { ingest: { frozenTimeoutMs: 3000 } }, true);
      const port = (cfg.http as { port: number }).port;
      const d = h.daemon(cfg);
      await waitResults(h, 'h264', 5, START_MS);
      await h.explain(waitFor('rejects while the scene changes', () => h.mqtt.json(h.topic('h264', 'reject')).length >= 3, FAULT_MS));
      assert.ok(results(h, 'h264').every((r) => r.verdict === 'ng'), 'the NG model makes every result NG');
      const frozeAt = Date.now();
      await cam.freeze();
      const st = await waitStatus(h, 'h264', (s) => s.state === 'frozen', FAULT_MS, frozeAt, 'frozen');
      assert.match(st.error ?? '', /image unchanged for \d+(\.\d)? s \(\d+ repeated frames\)/);
      const health = await fetch(`http://127.0.0.1:${port}/healthz`);
      const body = await health.text();
      assert.equal(health.status, 503, body);
      assert.match(body, /camera frozen: h264 \(image unchanged/, 'the lone frozen camera is named as frozen');
      // Through a decoder restart (a new RTSP session, which decodes the still image afresh) it stays frozen.
      await waitFor('a later frozen status', () => statuses(h, 'h264').filter((s) => s.state === 'frozen' && s.since > st.since).length >= 1
        || statuses(h, 'h264', st.since + 1).filter((s) => s.state === 'frozen').length >= 2, FAULT_MS);
      // No result and no reject for a frame captured after the freeze (2 s for frames already on their way).
      const stale = results(h, 'h264').filter((r) => r.capturedAt > frozeAt + 2000);
      assert.deepEqual(stale.map((r) => `${r.seq}@${r.capturedAt - frozeAt}ms`), [], 'no result for the frozen image');
      const staleRejects = h.mqtt.json<{ seq: number; capturedAt: number }>(h.topic('h264', 'reject')).filter((r) => r.capturedAt > frozeAt + 2000);
      assert.deepEqual(staleRejects.map((r) => r.seq), [], 'no reject for the frozen image: one NG part, one reject');
      const afterFreeze = results(h, 'h264').filter((r) => r.capturedAt > frozeAt).length;
      const unAt = Date.now();
      await cam.unfreeze();
      await waitStatus(h, 'h264', (s) => s.state === 'streaming', RESUME_MS, unAt, 'streaming again');
      await waitResults(h, 'h264', 3, RESUME_MS, unAt);
      await waitFor('/healthz 200 again', async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).status === 200, RESUME_MS);
      assert.ok(d.running);
      process.stderr.write(`# h264 gop 5 1000 kbps: frozen ${st.since - frozeAt} ms after freezing (timeout 3000 ms), ${afterFreeze} result(s) for frames captured `
        + `after the freeze signal (in flight), ${st.repeated} repeats counted; streaming ${results(h, 'h264', unAt)[0].capturedAt - unAt} ms after unfreezing\n`);
    } finally {
      await h.close();
    }
  });

  test('camera comes back with another size and codec (H.264 320x320 -> raw 160x120): logged, scored correctly, no crash', async () => {
    const h = new Harness();
    try {
      h.model = model;
      await h.startBroker();
      const cam = await h.camera({ images: [writeImages(join(h.dir, 'a'), 320, 320)], codec: 'h264', fps: 5, size: '320x320' });
      const d = h.daemon(await h.config([{ id: 'chg', url: cam.url }]));
      await waitResults(h, 'chg', 5, START_MS);
      await cam.kill();
      const upAt = Date.now();
      await cam.start(30000, { images: [writeImages(join(h.dir, 'b'), 160, 120)], codec: 'raw', size: '160x120' });
      await waitResults(h, 'chg', 8, RESUME_MS + 10000, upAt);
      // Frames of the old stream may still be in flight: judge the last 6.
      assertDistinctInOrder(results(h, 'chg', upAt).slice(-6));
      const line = d.proc.lines.find((l) => /source stream changed from h264 320x320 to rawvideo 160x120/.test(l));
      assert.ok(line, `a log line names the change; output:\n${d.proc.tail(30)}`);
      assert.ok(d.running);
    } finally {
      await h.close();
    }
  });
});
