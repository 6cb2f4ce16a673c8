// End-to-end daemon benchmark (issue 3, item 12), all in one run so the numbers are ratios on the same (shared,
// noisy) machine state:
//   1. bare onnxruntime-node throughput of the model (bare.ts), batch 1..cameras;
//   2. the real daemon (dist/src/main.js) fed by real RTSP cameras (gst-rtsp-server looping real images faster
//      than the model can keep up with, so the model is the bottleneck), publishing to a real mosquitto;
//      processed frames/s from the results received, frame-to-publish latency (the daemon's latencyMs: frame read
//      from ffmpeg -> result published) and frame-to-subscriber latency (arrival - capturedAt, adds MQTT);
//   3. resident memory of the daemon (and its ffmpeg children) sampled every --rss-every seconds.
//
//   node dist/bench/daemon/e2e.js --model models/demo --images DIR [--seconds 60] [--warmup 15] [--codec raw|h264]
//        [--fps 15] [--size WxH] [--cameras 1] [--bare-seconds 20] [--rss-every 5] [--out bench/results/x.json]
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { baseConfig, Daemon } from '../../test/integration/helpers/daemon';
import { freePort, REPO, tmpDir } from '../../test/integration/helpers/env';
import { Mosquitto } from '../../test/integration/helpers/mosquitto';
import { MqttCollector } from '../../test/integration/helpers/mqtt-collector';
import { RtspServer } from '../../test/integration/helpers/rtsp';
import { sleep, waitFor } from '../../test/integration/helpers/wait';
import { benchBare } from './bare';
import { mean, percentile, round, slope } from './stats';

function arg(name: string, def?: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : def;
}

function rssMiB(pid: number): number | null {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

function children(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      const c = readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim();
      if (c) out.push(...c.split(/\s+/).map(Number));
    }
  } catch { /* process gone */ }
  return out;
}

interface Result { camera: string; seq: number; capturedAt: number; latencyMs: number; verdict: string }

async function main(): Promise<void> {
  const modelDir = arg('model', join(REPO, 'models', 'demo'))!;
  const images = arg('images');
  if (!images) throw new Error('--images DIR (real images to stream, e.g. ../shared/data/mvtec_grid_subset/grid/test/good)');
  const seconds = Number(arg('seconds', '60'));
  const warmup = Number(arg('warmup', '15'));
  const codec = (arg('codec', 'raw') as 'raw' | 'h264');
  const fps = Number(arg('fps', '15'));
  const ncam = Number(arg('cameras', '1'));
  const rssEvery = Number(arg('rss-every', '5'));
  const manifest = JSON.parse(readFileSync(join(modelDir, 'model.json'), 'utf8'));
  const size = arg('size', codec === 'raw' ? `${manifest.input.width}x${manifest.input.height}` : '640x480')!;
  const out = arg('out');
  const tmp = tmpDir('etstpm-bench-');
  const startedAt = new Date().toISOString();
  const load0 = loadavg();

  process.stderr.write(`bare onnxruntime-node: ${arg('bare-seconds', '20')} s per batch size\n`);
  const bare = await benchBare(modelDir, Number(arg('bare-seconds', '20')),
    Array.from({ length: ncam }, (_, i) => i + 1), images);

  const broker = await new Mosquitto({ dir: tmp.dir }).start();
  const cams: RtspServer[] = [];
  for (let i = 0; i < ncam; i++) cams.push(await new RtspServer({ images: [images], fps, codec, size }).start(60000));
  const prefix = 'bench';
  const mqtt = await new MqttCollector({ url: broker.url, topics: [`${prefix}/+/result`, `${prefix}/+/status`] }).start();
  const httpPort = await freePort();
  const cfg = baseConfig({ cameras: cams.map((c, i) => ({ id: `cam${i + 1}`, url: c.url })), modelDir,
    mqttUrl: broker.url, prefix, httpPort,
    extra: { status: { intervalMs: 5000 }, log: { level: 'warn' }, ingest: { stallTimeoutMs: 10000, connectTimeoutMs: 20000 } } });
  // every camera delivers faster than the model runs, so inference is the bottleneck ("full load")
  const daemon = new Daemon(tmp.dir, cfg, { name: 'daemon' });
  const pid = daemon.proc.pid!;
  try {
    await waitFor('first result', () => mqtt.messages.some((m) => m.topic.endsWith('/result')), 120000);
    process.stderr.write(`daemon streaming; warm-up ${warmup} s, then ${seconds} s measured\n`);
    await sleep(warmup * 1000);
    const t0 = Date.now();
    const rss: Array<{ t: number; daemonMiB: number; ffmpegMiB: number }> = [];
    const sample = (): void => {
      const d = rssMiB(pid);
      if (d !== null) rss.push({ t: round((Date.now() - t0) / 1000, 1), daemonMiB: round(d, 1),
        ffmpegMiB: round(children(pid).map((c) => rssMiB(c) ?? 0).reduce((a, b) => a + b, 0), 1) });
    };
    sample();
    while (Date.now() - t0 < seconds * 1000) {
      await sleep(Math.min(rssEvery * 1000, t0 + seconds * 1000 - Date.now()));
      sample();
      if (!daemon.running) throw new Error(`daemon exited: ${daemon.proc.tail()}`);
    }
    const t1 = Date.now();
    await daemon.stop(8000);
    // the bare model again, with the daemon gone: the machine is shared, so the ceiling is bracketed in time
    process.stderr.write('bare onnxruntime-node again (after)\n');
    const bareAfter = await benchBare(modelDir, Number(arg('bare-seconds', '20')),
      Array.from({ length: ncam }, (_, i) => i + 1), images);
    const inWindow = mqtt.messages.filter((m) => m.topic.endsWith('/result') && m.t >= t0 && m.t < t1);
    const results = inWindow.map((m) => ({ r: JSON.parse(m.payload.toString()) as Result, t: m.t }));
    const el = (t1 - t0) / 1000;
    const fpsE2e = results.length / el;
    const pick = (r: typeof bare.results) => r.find((b) => b.batch === ncam) ?? r[0];
    const bareFps = (pick(bare.results).framesPerSecond + pick(bareAfter.results).framesPerSecond) / 2;
    const statuses = mqtt.messages.filter((m) => m.topic.endsWith('/status')).map((m) => JSON.parse(m.payload.toString()));
    const lastStatus: Record<string, unknown> = {};
    for (const s of statuses) lastStatus[s.camera] = s;
    const lat = results.map((x) => x.r.latencyMs);
    const transit = results.map((x) => x.t - x.r.capturedAt);
    const rssD = rss.map((s) => s.daemonMiB);
    const report = {
      format: 'etstpm-bench-daemon/1',
      created: startedAt,
      command: `node ${process.argv.slice(1).map((a) => a.replace(REPO + '/', '')).join(' ')}`,
      machine: { cpu: cpus()[0]?.model, cores: cpus().length, loadavgStart: load0.map((v) => round(v, 2)),
        loadavgEnd: loadavg().map((v) => round(v, 2)), node: process.version,
        onnxruntimeNode: JSON.parse(readFileSync(join(REPO, 'node_modules', 'onnxruntime-node', 'package.json'), 'utf8')).version,
        note: 'shared 2-core VM, no GPU: other jobs may run at the same time; compare ratios, not absolute numbers' },
      model: { dir: modelDir.replace(REPO + '/', ''), ...bare.model, provider: 'cpu' },
      stream: { cameras: ncam, codec, size, fps, images: images.replace(REPO + '/', ''), server: 'gst-rtsp-server (test/fixtures/rtsp_server.py)' },
      bare: { before: bare.results, after: bareAfter.results,
        note: 'bare = onnxruntime-node session.run alone (same session options as the daemon), measured before and after the daemon run' },
      endToEnd: {
        seconds: round(el), results: results.length, framesPerSecond: round(fpsE2e),
        ratioToBare: round(fpsE2e / bareFps), bareFramesPerSecond: round(bareFps), comparedWithBareBatch: ncam,
        target: 'ratioToBare >= 0.9',
        ng: results.filter((x) => x.r.verdict === 'ng').length,
        cameraStatus: lastStatus,
      },
      latencyMs: {
        frameToPublish: { p50: round(percentile(lat, 50)), p99: round(percentile(lat, 99)), mean: round(mean(lat)),
          note: "daemon's latencyMs: raw frame read from ffmpeg -> result published" },
        frameToSubscriber: { p50: round(percentile(transit, 50)), p99: round(percentile(transit, 99)),
          note: 'subscriber arrival - capturedAt (same host clock; adds the MQTT hop)' },
      },
      memory: {
        sampleEverySeconds: rssEvery, samples: rss.length,
        daemonRssMiB: { first: rssD[0], last: rssD[rssD.length - 1], min: Math.min(...rssD), max: Math.max(...rssD),
          slopeMiBPerMinute: round(slope(rss.map((s) => s.t / 60), rssD)) },
        ffmpegRssMiBLast: rss[rss.length - 1]?.ffmpegMiB,
        series: rss,
      },
    };
    const text = JSON.stringify(report, null, 2);
    if (out) writeFileSync(out, text + '\n');
    console.log(text);
  } finally {
    await daemon.stop(8000);
    await mqtt.stop();
    for (const c of cams) await c.stop();
    await broker.stop();
    tmp.remove();
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
