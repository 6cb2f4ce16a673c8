// What a second model costs, and how models share the one inference loop (docs/daemon.md "One batch
// per model").
//
//   node dist/bench/daemon/models.js --models models/demo,/path/to/hazelnut-model [--seconds 15] \
//        [--out bench/results/daemon-models.json]
//
// 1. Load cost, in a fresh child process per run (4 runs, A first and B first): resident memory (RSS) and wall time
//    of ModelSet.acquire (sha256 check, session create, warm-up) for one model, then a second, different model,
//    then the first again for another camera (shared: must cost nothing). CPU provider, the daemon's options.
// 2. Scheduling, in process: the real Pipeline with both models, fake cameras pushing frames on timers faster than
//    inference (so the loop is the bottleneck), each policy (round-robin, oldest-first) for --seconds. Reported per
//    camera: scored frames/s and the wait from frame arrival to result (p50/p95). Scenario "2+2": two cameras per
//    model at 10 fps; scenario "6+1": six cameras on B (more than maxBatch 4) and one on A.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { EventEmitter } from 'node:events';
import { createLogger } from '../../src/log';
import { Metrics } from '../../src/health/metrics';
import { ModelSet } from '../../src/infer/models';
import { Pipeline } from '../../src/pipeline';
import type { SchedulePolicy } from '../../src/pipeline';
import { percentile, round } from './stats';

const log = createLogger('silent');
const OPTS = { providers: ['cpu' as const], maxBatch: 4, tensorrt: { cacheDir: '/tmp/etstpm-bench-trt', fp16: false } };
const rssMiB = (): number => process.memoryUsage().rss / 2 ** 20;

async function loadChild(dirs: string[]): Promise<void> {
  const set = new ModelSet(OPTS, log);
  const steps: Array<{ step: string; loadMs: number; rssMiB: number; deltaMiB: number; models: number }> = [];
  let before = rssMiB();
  steps.push({ step: 'process start (node + onnxruntime-node imported)', loadMs: 0, rssMiB: round(before, 1), deltaMiB: 0, models: 0 });
  const plan: Array<[string, string]> = [[dirs[0], 'cam-a'], [dirs[1], 'cam-b'], [dirs[0], 'cam-c']];
  for (const [dir, cam] of plan) {
    const t0 = performance.now();
    const m = await set.acquire(dir, cam);
    const ms = performance.now() - t0;
    const now = rssMiB();
    steps.push({ step: `${cam}: ${m.engine.manifest.name} (${m.engine.manifest.width} px)`, loadMs: round(ms, 0), rssMiB: round(now, 1), deltaMiB: round(now - before, 1), models: set.size });
    before = now;
  }
  process.stdout.write(JSON.stringify(steps));
  await set.closeAll();
}

class TimerCamera extends EventEmitter {
  captured = 0;
  private timer: NodeJS.Timeout | null = null;
  constructor(readonly id: string, private readonly bytes: number, private readonly fps: number) {
    super();
  }
  start(): void {
    const frame = Buffer.alloc(this.bytes);
    for (let i = 0; i < frame.length; i++) frame[i] = (i * 31 + this.id.length * 7) & 255;
    this.timer = setInterval(() => {
      this.captured++;
      this.emit('frame', Buffer.from(frame), Date.now());
    }, 1000 / this.fps);
  }
  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}

async function schedule(set: ModelSet, dirs: string[], policy: SchedulePolicy, layout: Array<[number, number]>, seconds: number) {
  const waits = new Map<string, number[]>();
  const sink = {
    connected: true,
    publishResult: (r: { camera: string; latencyMs: number }) => {
      waits.get(r.camera)?.push(r.latencyMs);
      return true;
    },
    publishReject: () => true,
    publishSnapshot: () => true,
  };
  const p = new Pipeline(sink, new Metrics(), { rejectDeadlineMs: 500, snapshot: { onNg: false, everyN: 0, format: 'jpeg', maxBytes: 1 }, schedule: policy }, log);
  const cams: TimerCamera[] = [];
  for (const [modelIdx, n] of layout) {
    const m = await set.acquire(dirs[modelIdx], `m${modelIdx}`);
    const f = m.engine.manifest;
    for (let i = 0; i < n; i++) {
      const c = new TimerCamera(`${modelIdx === 0 ? 'A' : 'B'}${i + 1}`, f.width * f.height * 3, 10);
      waits.set(c.id, []);
      p.addCamera(c, m.engine);
      cams.push(c);
    }
  }
  p.start();
  for (const c of cams) c.start();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  for (const c of cams) c.stop();
  await p.stop();
  const perCamera = Object.fromEntries([...waits].map(([cam, w]) => [cam, {
    scoredPerS: round(w.length / seconds, 2), waitP50Ms: round(percentile(w, 50), 0), waitP95Ms: round(percentile(w, 95), 0),
    dropped: p.counter(cam).dropped,
  }]));
  return { policy, batches: p.batches, inferP50Ms: { A: round(p.inferenceP50(set.all().find((m) => m.cameras.has('m0'))?.engine), 1), B: round(p.inferenceP50(set.all().find((m) => m.cameras.has('m1'))?.engine), 1) }, perCamera };
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const get = (k: string, d: string): string => {
    const i = args.indexOf(`--${k}`);
    return i >= 0 ? args[i + 1] : d;
  };
  const dirs = get('models', '').split(',').filter(Boolean);
  if (dirs.length !== 2) throw new Error('--models A,B: two model folders');
  if (args.includes('--child')) return loadChild(dirs);
  const seconds = Number(get('seconds', '15'));
  const out = get('out', '');
  // Both orders: the first model in a process also pays onnxruntime's one-time set-up (arena, thread pools).
  const loads = [dirs, [...dirs].reverse(), dirs, [...dirs].reverse()].map((d) =>
    JSON.parse(execFileSync(process.execPath, [__filename, '--child', '--models', d.join(',')], { encoding: 'utf8' })) as unknown);
  process.stderr.write(`load cost: ${JSON.stringify(loads, null, 1)}\n`);
  const set = new ModelSet(OPTS, log);
  const scheduling: Record<string, unknown[]> = {};
  for (const [name, layout] of [['2+2', [[0, 2], [1, 2]]], ['6+1', [[0, 1], [1, 6]]]] as Array<[string, Array<[number, number]>]>) {
    scheduling[name] = [];
    for (const policy of ['round-robin', 'oldest-first'] as SchedulePolicy[]) {
      const r = await schedule(set, dirs, policy, layout, seconds);
      process.stderr.write(`${name} ${policy}: ${JSON.stringify(r)}\n`);
      scheduling[name].push(r);
    }
  }
  await set.closeAll();
  const result = {
    bench: 'daemon-models', date: new Date().toISOString(), command: `node dist/bench/daemon/models.js ${args.join(' ')}`,
    machine: { cpus: cpus().length, cpu: cpus()[0]?.model, loadavg: loadavg().map((v) => round(v, 2)) },
    models: { A: dirs[0], B: dirs[1] }, loads, scheduling,
  };
  if (out) writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
  else process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}

void main().catch((err: Error) => {
  process.stderr.write(`${err.stack ?? err.message}\n`);
  process.exit(1);
});
