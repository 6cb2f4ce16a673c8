// What the operator console (docs/console.md) costs, and whether node-rtsp-stream would serve its live view better.
//
//   node dist/bench/daemon/console-cost.js --model models/demo --images DIR [--seconds 20] [--rounds 4]
//     [--out bench/results/console-cost.json]
//
// 1. in process (same run): the console's per-frame tap (ConsoleHub.onResult, page closed) on real 256 px frames
//    and maps, OK and NG, against one inference of the model; and the CPU time of one live-view overlay render.
// 2. end to end: the daemon (dist/src/main.js) on an H.264 640x480 RTSP camera (gst-rtsp-server fixture) faster than
//    the model, console enabled; segments with the page closed and with a simulated open page (live.jpg as fast as
//    the page asks, every 250 ms at most, plus the state/trend/NG polls and NG thumbnails), in ABBA order.
//    Reported: processed frames/s in each, the ratio, the daemon's CPU-s per second, live images served.
// 3. node-rtsp-stream's relay: its ffmpeg command (`-i URL -f mpegts -codec:v mpeg1video -b:v 1000k -r 25 -`) on
//    the same camera: CPU-s per second of video (a second decode + an MPEG-1 encode per camera, no heat map).
import { spawn } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { createConsole } from '../../src/console';
import { overlayJpeg } from '../../src/render/overlay-jpeg';
import type { ConsoleResult } from '../../src/console/types';
import { InferenceEngine } from '../../src/infer/session';
import { createLogger } from '../../src/log';
import { normalize, verdict } from '../../src/score/normalize';
import { renderSnapshot } from '../../src/render/snapshot';
import { baseConfig, Daemon } from '../../test/integration/helpers/daemon';
import { freePort } from '../../test/integration/helpers/env';
import { RtspServer } from '../../test/integration/helpers/rtsp';
import { mean, percentile, round } from './stats';

const args = parseArgs({
  options: {
    model: { type: 'string', default: 'models/demo' },
    images: { type: 'string' },
    seconds: { type: 'string', default: '20' },
    rounds: { type: 'string', default: '4' },
    out: { type: 'string' },
  },
}).values;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const TICK = 100; // USER_HZ for /proc/<pid>/stat

function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / TICK; // utime, stime
}

async function inProcess(modelDir: string, images: string): Promise<Record<string, unknown>> {
  const log = createLogger('silent');
  const engine = await InferenceEngine.load({ modelDir, providers: ['cpu'], maxBatch: 1, tensorrt: { cacheDir: '/tmp', fp16: false } }, log);
  const m = engine.manifest;
  const files = readdirSync(images).sort().slice(0, 8);
  const frames = await Promise.all(files.map((f) => sharp(join(images, f)).removeAlpha().toColourspace('srgb').resize(m.width, m.height, { fit: 'fill' }).raw().toBuffer()));
  const inferMs: number[] = [];
  const maps: Float32Array[] = [];
  const raws: number[] = [];
  for (let i = 0; i < 12; i++) {
    const t0 = performance.now();
    const out = await engine.run([frames[i % frames.length]]);
    inferMs.push(performance.now() - t0);
    maps.push(new Float32Array(out.maps));
    raws.push(out.scores[0]);
  }
  const dir = mkdtempSync(join(tmpdir(), 'console-bench-'));
  const parts = createConsole({
    options: { enabled: true, token: '', ngHistory: 20, trendSeconds: 300, reviewDir: dir, mqttCommands: false,
      capture: { root: dir, everyN: 5, maxImages: 10, maxBytes: 1e8, minFreeBytes: 0 } },
    host: '127.0.0.1', topicPrefix: 'b', model: m, mqtt: null, log,
    sources: { health: () => ({ ok: true }), cameras: () => [] },
  });
  const tap = (v: 'ok' | 'ng', n: number): number => {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      const r: ConsoleResult = { camera: 'c', seq: i, capturedAt: Date.now(), score: normalize(raws[i % 12], m.normalization), rawScore: raws[i % 12], verdict: v, frame: frames[i % frames.length], map: maps[i % 12], model: { name: m.name, version: m.version, width: m.width, height: m.height, normalization: m.normalization } };
      parts.hub.onResult(r);
    }
    return Number(process.hrtime.bigint() - t0) / 1e3 / n;
  };
  tap('ok', 2000);
  const okUs = tap('ok', 20000);
  const ngUs = tap('ng', 2000);
  const renderCpuMs: number[] = [];
  const snapshotCpuMs: number[] = [];
  for (let i = 0; i < 20; i++) {
    let c0 = process.cpuUsage();
    await overlayJpeg(frames[i % frames.length], maps[i % 12], m.width, m.height, m.normalization);
    let c = process.cpuUsage(c0);
    renderCpuMs.push((c.user + c.system) / 1000);
    c0 = process.cpuUsage();
    await renderSnapshot({ frame: frames[i % frames.length], map: maps[i % 12], width: m.width, height: m.height, normalization: m.normalization }, { format: 'jpeg', maxBytes: 8 << 20 });
    c = process.cpuUsage(c0);
    snapshotCpuMs.push((c.user + c.system) / 1000);
  }
  await parts.close();
  await engine.close();
  const inferP50 = percentile(inferMs.slice(2), 50);
  return {
    inferenceMsP50: round(inferP50, 1),
    tapMicrosPerFrame: { ok: round(okUs, 2), ng: round(ngUs, 2) },
    tapShareOfInference: { ok: round(okUs / 1000 / inferP50, 6), ng: round(ngUs / 1000 / inferP50, 6) },
    verdictMixNote: `model verdicts on these images: ${raws.map((r) => verdict(normalize(r, m.normalization))).join(',')}`,
    overlayRenderCpuMs: { p50: round(percentile(renderCpuMs, 50), 2), mean: round(mean(renderCpuMs), 2) },
    snapshotTsRenderCpuMsForComparison: { p50: round(percentile(snapshotCpuMs, 50), 2), mean: round(mean(snapshotCpuMs), 2) },
  };
}

/** What the open page asks for (src/console/static/app.js), without a browser. */
function simulatePage(base: string, camera: string, stop: () => boolean, liveMs: number[]): Promise<{ live: number; ngImages: number }> {
  let live = 0;
  let ngImages = 0;
  const seen = new Set<number>();
  const loop = async (ms: number, fn: () => Promise<void>) => {
    while (!stop()) {
      const t0 = Date.now();
      await fn().catch(() => undefined);
      await sleep(Math.max(0, ms - (Date.now() - t0)));
    }
  };
  const c = encodeURIComponent(camera);
  return Promise.all([
    loop(250, async () => {
      const t0 = performance.now();
      const r = await fetch(`${base}/api/cameras/${c}/live.jpg`);
      await r.arrayBuffer();
      if (r.ok) {
        live++;
        liveMs.push(performance.now() - t0);
      }
    }),
    loop(1000, async () => void (await (await fetch(`${base}/api/state`)).json())),
    loop(2000, async () => void (await (await fetch(`${base}/api/cameras/${c}/trend?seconds=300`)).json())),
    loop(2000, async () => {
      const d = (await (await fetch(`${base}/api/cameras/${c}/ng`)).json()) as { items: Array<{ id: number }> };
      for (const it of d.items) {
        if (seen.has(it.id)) continue;
        seen.add(it.id);
        await (await fetch(`${base}/api/cameras/${c}/ng/${it.id}.jpg`)).arrayBuffer();
        ngImages++;
      }
    }),
  ]).then(() => ({ live, ngImages }));
}

async function endToEnd(modelDir: string, images: string, seconds: number, rounds: number, cam: RtspServer): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'console-bench-e2e-'));
  const httpPort = await freePort();
  const cfg = baseConfig({ cameras: [{ id: 'cam', url: cam.url }], modelDir, mqttUrl: '', prefix: 'bench', httpPort,
    extra: { mqtt: { embeddedPort: await freePort() }, log: { level: 'warn' }, status: { intervalMs: 5000 },
      console: { reviewDir: join(dir, 'review'), capture: { root: join(dir, 'cap') } } } });
  const d = new Daemon(dir, cfg, { name: 'bench-daemon' });
  const base = `http://127.0.0.1:${httpPort}`;
  const processed = async (): Promise<number> => ((await (await fetch(`${base}/api/state`)).json()) as { cameras: { processed: number }[] }).cameras[0].processed;
  for (let i = 0; i < 600 && (await processed().catch(() => 0)) < 5; i++) await sleep(500);
  await sleep(5000);
  const pid = d.proc.pid as number;
  const liveMs: number[] = [];
  const segs: Array<{ page: 'closed' | 'open'; fps: number; cpuPerS: number; live: number; ngImages: number }> = [];
  const order: Array<'closed' | 'open'> = [];
  for (let r = 0; r < rounds; r++) order.push(...(r % 2 === 0 ? (['closed', 'open'] as const) : (['open', 'closed'] as const)));
  for (const page of order) {
    const p0 = await processed();
    const c0 = cpuSeconds(pid);
    const t0 = Date.now();
    let stopFlag = false;
    const sim = page === 'open' ? simulatePage(base, 'cam', () => stopFlag, liveMs) : Promise.resolve({ live: 0, ngImages: 0 });
    await sleep(seconds * 1000);
    stopFlag = true;
    const s = await sim;
    const dt = (Date.now() - t0) / 1000;
    const p1 = await processed();
    segs.push({ page, fps: round((p1 - p0) / dt, 3), cpuPerS: round((cpuSeconds(pid) - c0) / dt, 3), live: s.live, ngImages: s.ngImages });
    process.stderr.write(`${page}: ${JSON.stringify(segs[segs.length - 1])}\n`);
    await sleep(2000); // let the watch grace (5 s) and in-flight renders pass... partly; closed segments start clean below
    if (page === 'open') await sleep(4000);
  }
  await d.stop();
  const closed = segs.filter((s) => s.page === 'closed');
  const open = segs.filter((s) => s.page === 'open');
  const openSeconds = open.length * seconds;
  return {
    segments: segs,
    closedFps: round(mean(closed.map((s) => s.fps)), 3),
    openFps: round(mean(open.map((s) => s.fps)), 3),
    openToClosedThroughput: round(mean(open.map((s) => s.fps)) / mean(closed.map((s) => s.fps)), 3),
    daemonCpuPerSecond: { closed: round(mean(closed.map((s) => s.cpuPerS)), 3), open: round(mean(open.map((s) => s.cpuPerS)), 3) },
    liveRequestMs: { p50: round(percentile(liveMs, 50), 1), p90: round(percentile(liveMs, 90), 1) },
    liveImagesPerSecondOpen: round(open.reduce((a, s) => a + s.live, 0) / openSeconds, 2),
  };
}

async function rtspRelay(cam: RtspServer, seconds: number): Promise<Record<string, unknown>> {
  // node-rtsp-stream's mpeg1-muxer: ffmpeg [-rtsp_transport tcp] -i URL -f mpegts -codec:v mpeg1video <options> -
  const argv = ['-loglevel', 'error', '-rtsp_transport', 'tcp', '-i', cam.url, '-f', 'mpegts', '-codec:v', 'mpeg1video', '-b:v', '1000k', '-r', '25', '-'];
  const p = spawn('ffmpeg', argv, { stdio: ['ignore', 'pipe', 'inherit'] });
  let bytes = 0;
  p.stdout.on('data', (b: Buffer) => (bytes += b.length));
  await sleep(5000); // connect + stream analysis
  const c0 = cpuSeconds(p.pid as number);
  const b0 = bytes;
  const t0 = Date.now();
  await sleep(seconds * 1000);
  const dt = (Date.now() - t0) / 1000;
  const cpu = (cpuSeconds(p.pid as number) - c0) / dt;
  p.kill('SIGTERM');
  return { command: `ffmpeg ${argv.join(' ').replace(cam.url, '<camera>')}`, cpuSecondsPerSecond: round(cpu, 3), outputKbitPerSecond: round(((bytes - b0) * 8) / 1000 / dt, 0) };
}

async function main(): Promise<void> {
  const modelDir = resolve(args.model as string);
  const images = resolve(args.images as string);
  const seconds = Number(args.seconds);
  const rounds = Number(args.rounds);
  const load0 = loadavg();
  const a = await inProcess(modelDir, images);
  process.stderr.write(`in process: ${JSON.stringify(a)}\n`);
  const cam = await new RtspServer({ images: [images], fps: 15, codec: 'h264', size: '640x480' }).start();
  try {
    const c = await rtspRelay(cam, seconds);
    process.stderr.write(`relay: ${JSON.stringify(c)}\n`);
    const b = await endToEnd(modelDir, images, seconds, rounds, cam);
    const result = {
      command: `node dist/bench/daemon/console-cost.js ${process.argv.slice(2).join(' ')}`,
      date: new Date().toISOString(),
      machine: { cpu: cpus()[0]?.model, cores: cpus().length, loadavgStart: load0.map((v) => round(v, 2)), loadavgEnd: loadavg().map((v) => round(v, 2)), node: process.version },
      model: modelDir,
      camera: { codec: 'h264', size: '640x480', fps: 15, images },
      inProcess: a,
      endToEnd: b,
      nodeRtspStreamRelay: c,
    };
    const text = `${JSON.stringify(result, null, 2)}\n`;
    if (args.out) writeFileSync(args.out as string, text);
    process.stdout.write(text);
  } finally {
    await cam.stop();
  }
}

void main().catch((err) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  process.exit(1);
});
