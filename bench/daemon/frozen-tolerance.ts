// The frozen-image tolerance (src/sources/frame-change.ts; docs/daemon.md "Frozen cameras"): how far apart the
// decoded frames of ONE still image are after a lossy codec (must stay below the tolerance), how far apart
// consecutive frames of a live scene are (must stay above it), and what the check costs per frame next to inference.
//
//   nice node dist/bench/daemon/frozen-tolerance.js [--frames 40] [--size 256] [--out bench/results/frozen-tolerance.json]
//
// Distance = the largest difference of two 32x32 grey block-mean thumbnails (grey levels 0-255), the measure
// ChangeDetector uses; the mean block difference is reported beside it.
//
// 1. Frozen: one image served by the RTSP fixture (gst-rtsp-server, test/fixtures/rtsp_server.py) as H.264 (x264)
//    and H.265 (x265), zerolatency/ultrafast, 10 fps, GOP 1/5/30 frames, 300/1000/4000 kbps, 512x512; two images
//    (MVTec grid: fine texture, the hardest for an encoder; hazelnut: object on a dark background). --frames frames
//    are decoded with ffmpeg over RTSP/TCP and scaled to --size (default 256x256, the demo model's input; 64 = the
//    test models') with the daemon's own filter chain (src/sources/ffmpeg-args.ts). Reported: the largest distance between any two decoded frames ("allPairsMax")
//    and the same after the first GOP ("steadyMax": the encoder's rate control settles), and how many frames the
//    detector would hand on (score) at each candidate tolerance: 1 = only the first, the ideal.
// 2. Live scenes, which must never look frozen: consecutive parts of the demo's synthetic camera
//    (src/sources/synthetic, the `npm start` camera, 60 parts), the same synthetic part without and with a defect
//    (the defect the only change: the smallest change that must count), and consecutive images (name order) of the shared
//    data sets' normal train images (different parts of one product: the "parts that differ only slightly" of a
//    real line), scaled to 256x256 with sharp; plus the closest pair of ANY two images of a set (all pairs); plus the
//    grid images looped through the H.264 fixture (1000 kbps, GOP 5) as the daemon decodes them.
// 3. Cost: thumbnail + distance per frame at 64/256/512 px against one inference of models/demo (256x256, CPU) and
//    one Buffer.copy of the frame, all in this run (ratios; the machine is shared).
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { filterChain } from '../../src/sources/ffmpeg-args';
import { ChangeDetector, Thumbnail, Thumbnailer, thumbDistance } from '../../src/sources/frame-change';
import { SyntheticLine } from '../../src/sources/synthetic/feeder';
import { DEFECT_KINDS, renderPart } from '../../src/sources/synthetic/part';
import { createRng } from '../../src/sources/synthetic/rng';
import { parseSynthetic } from '../../src/sources/url';
import { SHARED, REPO } from '../../test/integration/helpers/env';
import { RtspServer } from '../../test/integration/helpers/rtsp';
import { percentile, round } from './stats';

const arg = (name: string, def: string): string => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : def;
};
const FRAMES = Number(arg('--frames', '40'));
const SIZE = Number(arg('--size', '256'));
const TOLERANCES = [1, 2, 3, 4, 6, 8, 12];
const thumbs = new Thumbnailer(SIZE, SIZE);
const DATA = {
  grid: join(SHARED, 'data/mvtec_grid_subset/grid/train/good'),
  hazelnut: join(SHARED, 'data/hazelnut_toy/hazelnut_toy/train/good'),
  screw: join(SHARED, 'data/mvtec_screw/screw/train/good'),
};
const images = (dir: string, n = 60): string[] => readdirSync(dir).filter((f) => /\.(png|jpe?g)$/i.test(f)).sort().slice(0, n).map((f) => join(dir, f));

/** `n` frames of an RTSP stream as the daemon decodes them (its scale filter), at SIZE x SIZE. */
function decode(url: string, n: number): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const p = spawn('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-rtsp_transport', 'tcp', '-i', url, '-frames:v', String(n),
      '-an', '-vf', filterChain(null, { width: SIZE, height: SIZE }, 0), '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1']);
    const chunks: Buffer[] = [];
    let err = '';
    p.stdout.on('data', (c: Buffer) => chunks.push(c));
    p.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const t = setTimeout(() => p.kill('SIGKILL'), 60000 + n * 1000);
    p.on('exit', (code) => {
      clearTimeout(t);
      const all = Buffer.concat(chunks);
      const fb = SIZE * SIZE * 3;
      if (all.length < fb * n) return reject(new Error(`ffmpeg ${url}: ${all.length / fb} of ${n} frames (code ${code}): ${err.slice(-300)}`));
      resolve(Array.from({ length: n }, (_, i) => all.subarray(i * fb, (i + 1) * fb)));
    });
  });
}

function pairStats(ts: Thumbnail[]): { max: number; meanOfMean: number } {
  let max = 0;
  let sumMean = 0;
  let n = 0;
  for (let i = 0; i < ts.length; i++) {
    for (let j = i + 1; j < ts.length; j++) {
      const d = thumbDistance(ts[i], ts[j]);
      max = Math.max(max, d.max);
      sumMean += d.mean;
      n++;
    }
  }
  return { max: round(max, 2), meanOfMean: round(n ? sumMean / n : 0, 3) };
}

/** Frames the detector would hand on (score) at tolerance t: 1 = only the first. */
function handedOn(frames: Buffer[], t: number): number {
  const c = new ChangeDetector(t, SIZE, SIZE);
  return frames.filter((f, i) => c.check(f, i + 1)).length;
}

function consecutive(ts: Thumbnail[]): { n: number; min: number; p1: number; p5: number; p50: number; meanBlockP50: number } {
  const d = ts.slice(1).map((t, i) => thumbDistance(t, ts[i]));
  const max = d.map((x) => x.max);
  return { n: d.length, min: round(Math.min(...max), 2), p1: round(percentile(max, 1), 2), p5: round(percentile(max, 5), 2),
    p50: round(percentile(max, 50), 2), meanBlockP50: round(percentile(d.map((x) => x.mean), 50), 3) };
}

function closestPair(ts: Thumbnail[]): number {
  let min = Infinity;
  for (let i = 0; i < ts.length; i++) for (let j = i + 1; j < ts.length; j++) min = Math.min(min, thumbDistance(ts[i], ts[j]).max);
  return round(min, 2);
}

const fileThumb = async (path: string): Promise<Thumbnail> =>
  thumbs.of(await sharp(path).removeAlpha().toColourspace('srgb').resize(SIZE, SIZE, { fit: 'fill' }).raw().toBuffer());

async function frozen(): Promise<unknown[]> {
  const rows: unknown[] = [];
  const stills = { grid: images(DATA.grid, 1)[0], hazelnut: images(DATA.hazelnut, 1)[0] };
  for (const [name, img] of Object.entries(stills)) {
    for (const codec of ['h264', 'h265'] as const) {
      for (const gop of [1, 5, 30]) {
        for (const kbps of [300, 1000, 4000]) {
          const cam = await new RtspServer({ images: [img], codec, fps: 10, gop, kbps, size: '512x512' }).start();
          try {
            const frames = await decode(cam.url, FRAMES);
            const ts = frames.map((f) => thumbs.of(f));
            const distinct = new Set(frames.map((f) => createHash('md5').update(f).digest('hex'))).size;
            const all = pairStats(ts);
            const steady = pairStats(ts.slice(Math.min(gop, 10)));
            const row = { image: name, codec, gop, kbps, frames: frames.length, distinctFrames: distinct, allPairsMax: all.max, steadyMax: steady.max,
              allPairsMeanBlock: all.meanOfMean, handedOn: Object.fromEntries(TOLERANCES.map((t) => [t, handedOn(frames, t)])) };
            console.log(JSON.stringify(row));
            rows.push(row);
          } finally {
            await cam.stop();
          }
        }
      }
    }
  }
  return rows;
}

async function live(): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  const line = new SyntheticLine(parseSynthetic('synthetic://'));
  const synth: Thumbnail[] = [];
  for (let i = 0; i < 60; i++) {
    const p = await line.next();
    const s = line.params.size;
    synth.push(thumbs.of(await sharp(p.rgb, { raw: { width: s, height: s, channels: 3 } }).resize(SIZE, SIZE, { fit: 'fill' }).raw().toBuffer()));
  }
  out.synthetic = { ...consecutive(synth), closestPair: closestPair(synth), source: 'synthetic:// defaults (the npm start camera), 60 parts' };
  console.log('synthetic', JSON.stringify(out.synthetic));
  // The smallest change that must count: the same synthetic part (same pose, same rng state) without and with its
  // defect, as if only the defect appeared in an otherwise unchanged scene.
  const defectOnly: Record<string, number[]> = {};
  for (const kind of DEFECT_KINDS) {
    defectOnly[kind] = [];
    for (let seed = 1; seed <= 20; seed++) {
      const s = line.params.size;
      const [good, bad] = await Promise.all([renderPart(createRng(seed), s, null), renderPart(createRng(seed), s, kind)]);
      const [a, b] = await Promise.all([good, bad].map(async (p) => thumbs.of(await sharp(p.rgb, { raw: { width: s, height: s, channels: 3 } }).resize(SIZE, SIZE, { fit: 'fill' }).raw().toBuffer())));
      defectOnly[kind].push(thumbDistance(a, b).max);
    }
  }
  out.syntheticDefectOnly = { ...Object.fromEntries(Object.entries(defectOnly).map(([k, v]) => [k, { min: round(Math.min(...v), 2), p50: round(percentile(v, 50), 2), max: round(Math.max(...v), 2) }])),
    source: 'the same synthetic part (seeds 1-20) rendered without and with each defect kind: the defect is the only change' };
  console.log('synthetic defect only', JSON.stringify(out.syntheticDefectOnly));
  for (const [name, dir] of Object.entries(DATA)) {
    const ts = await Promise.all(images(dir).map(fileThumb));
    out[name] = { ...consecutive(ts), closestPair: closestPair(ts), source: `${dir.replace(SHARED, '../shared')}, first ${ts.length} images in name order` };
    console.log(name, JSON.stringify(out[name]));
  }
  const cam = await new RtspServer({ images: [DATA.grid], codec: 'h264', fps: 10, gop: 5, kbps: 1000, size: '512x512' }).start();
  try {
    const frames = await decode(cam.url, 40);
    out.gridOverH264 = { ...consecutive(frames.map((f) => thumbs.of(f))), source: 'grid train/good looped by the RTSP fixture, h264 1000 kbps gop 5 10 fps 512x512' };
    console.log('grid over h264', JSON.stringify(out.gridOverH264));
  } finally {
    await cam.stop();
  }
  return out;
}

function timeIt(fn: () => unknown, minMs = 400): number {
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < minMs) {
    for (let i = 0; i < 8; i++) fn();
    n += 8;
  }
  return ((performance.now() - t0) * 1000) / n;
}

async function cost(): Promise<Record<string, unknown>> {
  const session = await ort.InferenceSession.create(join(REPO, 'models/demo/model.onnx'), { executionProviders: ['cpu'] });
  const input = new ort.Tensor('uint8', new Uint8Array(256 * 256 * 3).fill(128), [1, 256, 256, 3]);
  for (let i = 0; i < 3; i++) await session.run({ frames: input });
  const inferMs: number[] = [];
  for (let i = 0; i < 10; i++) {
    const t0 = performance.now();
    await session.run({ frames: input });
    inferMs.push(performance.now() - t0);
  }
  await session.release();
  const inferUs = percentile(inferMs, 50) * 1000;
  const rows = [64, 256, 512].map((s) => {
    const a = Buffer.alloc(s * s * 3);
    for (let i = 0; i < a.length; i++) a[i] = (i * 2654435761) >>> 24;
    const dst = Buffer.alloc(a.length);
    const th = new Thumbnailer(s, s);
    const ref = th.of(a);
    const copyUs = timeIt(() => a.copy(dst));
    const checkUs = timeIt(() => thumbDistance(th.of(a), ref));
    return { size: `${s}x${s}`, copyUs: round(copyUs, 2), thumbnailAndDistanceUs: round(checkUs, 1), ratioToCopy: round(checkUs / copyUs, 1),
      ratioToInference: round(checkUs / inferUs, 4) };
  });
  return { inference: { model: 'models/demo (256x256, batch 1, CPU provider)', p50Ms: round(inferUs / 1000, 1), runs: inferMs.length }, rows };
}

async function main(): Promise<void> {
  const t0 = Date.now();
  const c = await cost();
  console.table((c as { rows: object[] }).rows);
  const f = await frozen();
  const l = await live();
  const out = {
    command: `nice node dist/bench/daemon/frozen-tolerance.js ${process.argv.slice(2).join(' ')}`.trim(),
    date: new Date().toISOString(),
    wallS: Math.round((Date.now() - t0) / 1000),
    machine: { cpu: cpus()[0]?.model, cores: cpus().length, loadavg: loadavg().map((x) => round(x, 2)) },
    node: process.version,
    measure: `32x32 grey block-mean thumbnail of the ${SIZE}x${SIZE} model-size frame; distance = largest block difference, grey levels 0-255`,
    cost: c,
    frozen: f,
    live: l,
  };
  const o = arg('--out', '');
  if (o) writeFileSync(o, `${JSON.stringify(out, null, 2)}\n`);
}

void main().catch((err: Error) => {
  console.error(err);
  process.exit(1);
});
