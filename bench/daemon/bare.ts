// Bare model throughput in onnxruntime-node: the ceiling the daemon is measured against (bench/daemon/README.md,
// docs/testing.md "Benchmarks").
// Same session options as the daemon (src/infer/session.ts: CPU provider, graphOptimizationLevel "all", default
// threads), same input (uint8 NHWC frames at the model size, here copies of real images decoded by sharp), no
// ingest, no MQTT. Reports frames/s per batch size after a warm-up.
//
//   node dist/bench/daemon/bare.js --model models/demo [--seconds 20] [--batches 1,2,4] [--images DIR]
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { percentile, round } from './stats';
import { arg } from './proc';

export interface BareResult {
  batch: number;
  runs: number;
  frames: number;
  seconds: number;
  framesPerSecond: number;
  runMsP50: number;
  runMsP99: number;
}

async function loadFrames(dir: string | undefined, w: number, h: number, n: number): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  if (dir) {
    for (const f of readdirSync(dir).sort().slice(0, n)) {
      const buf = await sharp(join(dir, f)).removeAlpha().toColourspace('srgb').resize(w, h, { fit: 'fill' })
        .raw().toBuffer();
      out.push(new Uint8Array(buf.buffer, buf.byteOffset, buf.length));
    }
  }
  while (out.length < n) out.push(new Uint8Array(w * h * 3).map((_, i) => (i * 31 + out.length * 7) % 256));
  return out;
}

/** One onnxruntime-node session on the model with the daemon's options, fed a fixed batch of real frames. */
export class BareRunner {
  private constructor(private readonly session: ort.InferenceSession, private readonly feeds: Record<string, ort.Tensor>,
    readonly batch: number) {}

  static async create(modelDir: string, batch: number, imagesDir?: string): Promise<BareRunner> {
    const manifest = JSON.parse(readFileSync(join(modelDir, 'model.json'), 'utf8'));
    const { height: h, width: w } = manifest.input;
    const session = await ort.InferenceSession.create(join(modelDir, manifest.onnx.file),
      { executionProviders: ['cpu'], graphOptimizationLevel: 'all' });
    const frames = await loadFrames(imagesDir, w, h, batch);
    const data = new Uint8Array(batch * h * w * 3);
    for (let i = 0; i < batch; i++) data.set(frames[i], i * h * w * 3);
    const r = new BareRunner(session, { [manifest.input.name]: new ort.Tensor('uint8', data, [batch, h, w, 3]) }, batch);
    for (let i = 0; i < 3; i++) await session.run(r.feeds); // warm-up
    return r;
  }

  /** Runs back to back for `seconds`; returns per-run times (ms) and the elapsed seconds. */
  async runFor(seconds: number): Promise<{ times: number[]; seconds: number; frames: number }> {
    const times: number[] = [];
    const t0 = performance.now();
    while (performance.now() - t0 < seconds * 1000) {
      const t = performance.now();
      await this.session.run(this.feeds);
      times.push(performance.now() - t);
    }
    return { times, seconds: (performance.now() - t0) / 1000, frames: times.length * this.batch };
  }

  release(): Promise<void> { return this.session.release(); }
}

export async function benchBare(modelDir: string, seconds: number, batches: number[], imagesDir?: string):
  Promise<{ model: { name: string; version: string; height: number; width: number }; results: BareResult[] }> {
  const manifest = JSON.parse(readFileSync(join(modelDir, 'model.json'), 'utf8'));
  const results: BareResult[] = [];
  for (const b of batches) {
    const runner = await BareRunner.create(modelDir, b, imagesDir);
    const { times, seconds: el, frames } = await runner.runFor(seconds);
    await runner.release();
    results.push({ batch: b, runs: times.length, frames, seconds: round(el), framesPerSecond: round(frames / el),
      runMsP50: round(percentile(times, 50)), runMsP99: round(percentile(times, 99)) });
  }
  return { model: { name: manifest.name, version: manifest.version, height: manifest.input.height,
    width: manifest.input.width }, results };
}

if (require.main === module) {
  const model = arg('model', 'models/demo')!;
  benchBare(model, Number(arg('seconds', '20')), arg('batches', '1,2,4')!.split(',').map(Number), arg('images'))
    .then((r) => console.log(JSON.stringify(r, null, 2)))
    .catch((e) => { console.error(e); process.exit(1); });
}
