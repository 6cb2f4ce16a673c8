// Soak benchmark (bench/daemon/README.md, "Soak"): the real daemon (dist/src/main.js) at full load for a long time,
// fed by a real RTSP camera (gst-rtsp-server, test/fixtures/rtsp_server.py) and publishing to a real mosquitto,
// with its memory sampled every --rss-every seconds: resident memory from /proc (daemon and its ffmpeg children)
// and, from the daemon's own /metrics, the V8 heap and external (Buffer) memory, so a growth can be placed in JS
// objects or in native memory. Slopes are reported over the whole run, after --warmup-minutes, and over the last
// --tail-minutes (the acceptance figure: growth over the tail in % of RSS).
//
// It always stops by itself: the sampling loop is bounded by --seconds and a watchdog timer ends the process
// (cleaning up its children) --seconds + --grace seconds after its start whatever happens; SIGTERM cleans up too. The JSON is rewritten after every sample
// (`partial: true` until the end), so an interrupted run still leaves its series behind.
//
//   node dist/bench/daemon/soak.js --model models/demo --images DIR[,DIR...] [--seconds 3600] [--codec raw|h264]
//        [--fps 10] [--size WxH] [--rss-every 10] [--warmup-minutes 10] [--tail-minutes 30] [--grace 90]
//        [--out FILE.json]
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { connect } from 'mqtt';
import { baseConfig, Daemon } from '../../test/integration/helpers/daemon';
import { freePort, REPO, tmpDir } from '../../test/integration/helpers/env';
import { Mosquitto } from '../../test/integration/helpers/mosquitto';
import { RtspServer } from '../../test/integration/helpers/rtsp';
import { sleep, waitFor } from '../../test/integration/helpers/wait';
import { percentile, round, slope } from './stats';
import { arg, children, metricsText, rssMiB, stamp, streamArgs } from './proc';

/** The daemon's own view of its memory (prom-client default metrics), in MiB; empty when /metrics does not answer. */
async function heapMiB(port: number): Promise<{ heapUsed?: number; heapTotal?: number; external?: number }> {
  try {
    const text = await metricsText(port);
    const get = (name: string): number | undefined => {
      const m = new RegExp(`^${name} ([0-9.e+]+)`, 'm').exec(text);
      return m ? round(Number(m[1]) / 2 ** 20, 1) : undefined;
    };
    return { heapUsed: get('etstpm_nodejs_heap_size_used_bytes'), heapTotal: get('etstpm_nodejs_heap_size_total_bytes'),
      external: get('etstpm_nodejs_external_memory_bytes') };
  } catch {
    return {};
  }
}

interface Sample { t: number; daemonMiB: number; ffmpegMiB: number; heapUsedMiB?: number; heapTotalMiB?: number;
  externalMiB?: number; results: number; dropped?: number }

/** Least-squares slope (MiB/min) of `key` over samples with t >= fromS, and growth over that span in % of the mean. */
function trend(series: Sample[], key: 'daemonMiB' | 'heapUsedMiB' | 'externalMiB', fromS: number) {
  const s = series.filter((x) => x.t >= fromS && typeof x[key] === 'number');
  if (s.length < 3) return null;
  const ys = s.map((x) => x[key] as number);
  const k = slope(s.map((x) => x.t / 60), ys);
  const minutes = (s[s.length - 1].t - s[0].t) / 60;
  const meanY = ys.reduce((a, b) => a + b, 0) / ys.length;
  return { fromSeconds: fromS, samples: s.length, first: ys[0], last: ys[ys.length - 1], min: Math.min(...ys),
    max: Math.max(...ys), slopeMiBPerMinute: round(k, 4), fittedGrowthMiB: round(k * minutes, 2),
    fittedGrowthPercent: round((100 * k * minutes) / meanY, 2) };
}

async function main(): Promise<void> {
  const { modelDir, imageDirs, codec, size, manifest, out } = streamArgs();
  const seconds = Number(arg('seconds', '3600'));
  const fps = Number(arg('fps', '10'));
  const rssEvery = Number(arg('rss-every', '10'));
  const warmupMin = Number(arg('warmup-minutes', '10'));
  const tailMin = Number(arg('tail-minutes', '30'));
  const grace = Number(arg('grace', '90'));
  const log = stamp;
  const tmp = tmpDir('etstpm-soak-');
  const startedAt = new Date().toISOString();
  const load0 = loadavg();

  const broker = await new Mosquitto({ dir: tmp.dir }).start();
  const cam = await new RtspServer({ images: imageDirs, fps, codec, size }).start(60000);
  const prefix = 'soak';
  const httpPort = await freePort();
  const cfg = baseConfig({ cameras: [{ id: 'cam1', url: cam.url }], modelDir, mqttUrl: broker.url, prefix, httpPort,
    extra: { status: { intervalMs: 5000 }, log: { level: 'warn' }, ingest: { stallTimeoutMs: 10000, connectTimeoutMs: 20000 } } });
  const daemon = new Daemon(tmp.dir, cfg, { name: 'daemon' });
  const pid = daemon.proc.pid!;

  // Bounded whatever happens: the watchdog cleans up and exits even if a step below hangs.
  let cleaned = false;
  const cleanup = async (): Promise<void> => {
    if (cleaned) return;
    cleaned = true;
    await daemon.stop(8000).catch(() => undefined);
    await cam.stop().catch(() => undefined);
    await broker.stop().catch(() => undefined);
    tmp.remove();
  };
  setTimeout(() => { log('watchdog: hard stop'); void cleanup().finally(() => process.exit(3)); }, (seconds + grace) * 1000).unref();
  for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => { log(`${sig}: stopping`); void cleanup().finally(() => process.exit(4)); });

  // Light subscriber: counts and latencies only (an hour of payloads is not kept).
  const latencies: number[] = [];
  let results = 0; let ng = 0; let dropped: number | undefined; let lastStatus: unknown = null;
  const client = connect(broker.url, { clientId: 'soak-sub' });
  client.on('message', (topic, payload) => {
    const m = JSON.parse(payload.toString());
    if (topic.endsWith('/result')) { results++; latencies.push(m.latencyMs); if (m.verdict === 'ng') ng++; }
    else if (topic.endsWith('/status')) { dropped = m.dropped; lastStatus = m; }
  });
  await new Promise<void>((res) => client.on('connect', () => client.subscribe([`${prefix}/+/result`, `${prefix}/+/status`], () => res())));

  const series: Sample[] = [];
  let t0: number;
  const report = (partial: boolean) => {
    const lat = latencies;
    const last = series[series.length - 1];
    const end = last?.t ?? 0;
    return {
      format: 'etstpm-bench-daemon-soak/1', partial, created: startedAt,
      command: `node ${process.argv.slice(1).map((a) => a.replace(REPO + '/', '')).join(' ')}`,
      machine: { cpu: cpus()[0]?.model, cores: cpus().length, loadavgStart: load0.map((v) => round(v, 2)),
        loadavgNow: loadavg().map((v) => round(v, 2)), node: process.version,
        note: 'shared 2-core VM, no GPU, other jobs running at the same time' },
      model: { dir: modelDir.replace(REPO + '/', ''), name: manifest.name, version: manifest.version,
        height: manifest.input.height, width: manifest.input.width, provider: 'cpu' },
      stream: { cameras: 1, codec, size, fps, images: imageDirs, server: 'gst-rtsp-server (test/fixtures/rtsp_server.py)' },
      seconds: round(end, 1), results, ng, framesPerSecond: round(results / Math.max(1, end)), droppedByBackpressure: dropped,
      cameraStatusAtEnd: lastStatus,
      frameToPublishMs: { p50: round(percentile(lat, 50)), p99: round(percentile(lat, 99)) },
      memory: {
        sampleEverySeconds: rssEvery,
        daemonRss: { all: trend(series, 'daemonMiB', 0), afterWarmup: trend(series, 'daemonMiB', warmupMin * 60),
          lastTail: trend(series, 'daemonMiB', end - tailMin * 60) },
        heapUsed: { afterWarmup: trend(series, 'heapUsedMiB', warmupMin * 60), lastTail: trend(series, 'heapUsedMiB', end - tailMin * 60) },
        external: { afterWarmup: trend(series, 'externalMiB', warmupMin * 60), lastTail: trend(series, 'externalMiB', end - tailMin * 60) },
        goal: `growth over the last ${tailMin} min < 1 % of RSS (fitted slope x span / mean RSS)`,
        series,
      },
    };
  };
  const write = (partial: boolean) => { if (out) writeFileSync(out, JSON.stringify(report(partial), null, 1) + '\n'); };

  try {
    await waitFor('first result', () => results > 0, 120000);
    t0 = Date.now();
    log(`daemon streaming (pid ${pid}); ${seconds} s, sample every ${rssEvery} s`);
    let nextLog = t0 + 60000;
    for (;;) {
      const d = rssMiB(pid);
      const h = await heapMiB(httpPort);
      if (d !== null) series.push({ t: round((Date.now() - t0) / 1000, 1), daemonMiB: round(d, 1),
        ffmpegMiB: round(children(pid).map((c) => rssMiB(c) ?? 0).reduce((a, b) => a + b, 0), 1),
        heapUsedMiB: h.heapUsed, heapTotalMiB: h.heapTotal, externalMiB: h.external, results, dropped });
      write(true);
      if (!daemon.running) throw new Error(`daemon exited: ${daemon.proc.tail()}`);
      if (Date.now() > nextLog) {
        nextLog += 60000;
        const s = series[series.length - 1];
        log(`${Math.round((Date.now() - t0) / 1000)} s: ${results} results, RSS ${s?.daemonMiB} MiB, heap ${s?.heapUsedMiB} MiB, external ${s?.externalMiB} MiB`);
      }
      const left = t0 + seconds * 1000 - Date.now();
      if (left <= 0) break;
      await sleep(Math.min(rssEvery * 1000, left));
    }
    write(false);
    const r = report(false);
    console.log(JSON.stringify({ ...r, memory: { ...r.memory, series: `${series.length} samples` } }, null, 2));
  } finally {
    client.end(true);
    await cleanup();
  }
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
