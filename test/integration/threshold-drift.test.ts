// Threshold override and drift in the real daemon process (docs/configuration.md, "Threshold override"; docs/daemon.md,
// "Drift"): two RTSP cameras, mosquitto, a real ONNX model calibrated on the "normal" scene, console token set.
//  (a) camera a: threshold lowered by an MQTT command (token from the payload) -> its frames turn NG, scores re-centred,
//      status says runtime; then a SIGHUP with only a's cameras[].threshold changed -> source config, verdicts OK again,
//      and a's decoder was not restarted (no new RTSP client, no "camera removed");
//  (b) bad values (MQTT: negative, a string, no token; SIGHUP config: negative) are refused naming camera and value
//      while both cameras keep being scored;
//  (c) camera b: threshold raised, then its scene changes (the RTSP camera restarted with brighter images): the OK
//      frames now score above the calibration quantile, drift rises in the status and /metrics, warned once.
// Threshold and drift also reach Sparkplug (DBIRTH, then DDATA by alias).
// Scenes are uniform grey images (sharp): the test model's score is a smooth function of the grey level, so which
// side of the calibration quantile a scene lies on does not depend on codec noise.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import sharp from 'sharp';
import { Camera } from './helpers/daemon';
import { missing } from './helpers/env';
import { CameraStatus, Harness, ResultMsg } from './helpers/harness';
import { metric, SparkplugHost, SpMessage, stopAllHosts } from './helpers/sparkplug-host';
import { waitFor } from './helpers/wait';

const skip = missing('daemon', 'venv', 'mosquitto', 'ffmpeg', 'rtsp-server');
const EVENT_MS = 60000;
const TOKEN = 'line-3-token';

interface Threshold { raw: number; source: 'model' | 'config' | 'runtime'; model: number }
interface Drift { share: number | null; expectedShare: number | null; reference: number; frames: number; window: number; drifting: boolean }
type Status = CameraStatus & { threshold?: Threshold; drift?: Drift };
interface Reply { action: string; ok: boolean; error?: string; threshold?: Threshold }

async function greys(dir: string, levels: number[]): Promise<string> {
  mkdirSync(dir, { recursive: true });
  for (const v of levels) {
    await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: v, g: v, b: v } } }).png().toFile(join(dir, `grey-${String(v).padStart(3, '0')}.png`));
  }
  return dir;
}

describe('threshold override and drift: real daemon, RTSP, mosquitto', { skip }, () => {
  const h = new Harness();
  after(async () => {
    await stopAllHosts();
    await h.close();
  });

  test('MQTT and SIGHUP threshold changes, refusals, drift after a scene change', async () => {
    // Normal scene: greys 112..136 (raw ~0.03-0.08 with this model); the model is calibrated on greys 96..152, so its
    // calibration quantile (threshold.raw, quantile 0.99) lies above every normal frame. Drift scene: greys 176/184
    // (raw ~0.3), far above it.
    const calib = await greys(join(h.dir, 'calib'), [96, 104, 112, 120, 128, 136, 144, 152]);
    const normal = await greys(join(h.dir, 'normal'), [112, 120, 128, 136]);
    const drifted = await greys(join(h.dir, 'drifted'), [176, 184]);
    const model = h.makeModel({ calibrate: [calib] });
    const m = model.manifest;
    const span = m.normalization.max - m.normalization.min;
    await h.startBroker();
    const host = await new SparkplugHost(h.broker.url, h.prefix).start();
    const camA = await h.camera({ images: [normal], fps: 5, hold: 2, size: undefined });
    const camB = await h.camera({ images: [normal], fps: 5, hold: 2, size: undefined, mount: '/b' });
    const cameras = (ta?: number, tb?: number): Camera[] => [
      { id: 'a', url: camA.url, ...(ta === undefined ? {} : { threshold: ta }) },
      { id: 'b', url: camB.url, ...(tb === undefined ? {} : { threshold: tb }) },
    ];
    // The scenes' greys step by 8 levels, no more than ingest.frozenTolerance (docs/daemon.md, "Frozen cameras"):
    // byte-exact repeat detection here, so that every grey counts as a new frame (this test is about thresholds).
    const cfg = await h.config(cameras(), { ingest: { frozenTolerance: 0 }, console: { token: TOKEN }, drift: { window: 20, warnShare: 0.5 }, sparkplug: { enabled: true, groupId: h.prefix, edgeNodeId: 'edge1' } }, true);
    const port = (cfg.http as { port: number }).port;
    const d = h.daemon(cfg);

    const results = (cam: string, since: number) => h.mqtt.json<ResultMsg>(h.topic(cam, 'result'), since);
    const status = (cam: string, pred: (s: Status) => boolean, since: number, what: string) =>
      h.explain(waitFor(`${cam} status ${what}`, () => h.mqtt.on(h.topic(cam, 'status'), since).filter((x) => x.payload.length > 0)
        .map((x) => JSON.parse(x.payload.toString('utf8')) as Status).find(pred), EVENT_MS));
    /** `n` results of `cam` scored after `since` (the first one skipped: it may have been in flight). */
    const scored = (cam: string, since: number, n: number, what: string) =>
      h.explain(waitFor(`${n} results of ${cam} ${what}`, () => {
        const rs = results(cam, since).slice(1);
        return rs.length >= n ? rs : false;
      }, EVENT_MS));
    const command = async (cam: string, payload: Record<string, unknown>): Promise<Reply & { t: number }> => {
      // The reply after those already received (arrival times have 1 ms resolution: not a safe separator).
      const topic = h.topic(cam, 'command', 'reply');
      const n = h.mqtt.on(topic).length;
      h.mqtt.client.publish(h.topic(cam, 'command'), JSON.stringify(payload), { qos: 1 });
      const r = await h.explain(waitFor(`${topic} reply #${n + 1}`, () => h.mqtt.on(topic)[n], EVENT_MS));
      return { ...(JSON.parse(r.payload.toString('utf8')) as Reply), t: r.t };
    };
    /** The Sparkplug DDATA of `cam` carrying `name` (alias from its DBIRTH) that satisfies `pred`. */
    const ddata = async (cam: string, name: string, pred: (v: unknown) => boolean, after: number) => {
      const birth = await h.explain(host.waitFor(`DBIRTH ${cam}`, (x) => x.type === 'DBIRTH' && x.device === cam, EVENT_MS));
      const alias = metric(birth, name)?.alias;
      return h.explain(host.waitFor(`DDATA ${cam} ${name}`, (x: SpMessage) => x.type === 'DDATA' && x.device === cam
        && x.metrics.some((y) => y.alias === alias && pred(y.value)), EVENT_MS, after));
    };
    const consistent = (r: ResultMsg, thr: number) => Math.abs(r.score - Math.min(1, Math.max(0, (r.rawScore - thr) / span + 0.5))) < 1e-4;

    // Start: both cameras at the model's threshold, normal frames OK, no drift.
    const t0 = Date.now();
    for (const cam of ['a', 'b']) {
      const st = await status(cam, (s) => s.state === 'streaming' && s.drift !== undefined && s.drift.frames >= 20, t0, 'streaming, drift window full');
      assert.deepEqual(st.threshold, { raw: m.threshold.raw, source: 'model', model: m.threshold.raw });
      assert.equal(st.drift?.share, 0, `${cam}: normal frames below the calibration quantile`);
      assert.equal(st.drift?.reference, m.threshold.raw);
      assert.ok(Math.abs((st.drift?.expectedShare ?? NaN) - 0.01) < 1e-9, 'expected share 1 - quantile (0.99)');
    }
    assert.ok((await scored('a', t0, 5, 'at start')).every((r) => r.verdict === 'ok' && consistent(r, m.threshold.raw)));
    const birthA = await h.explain(host.waitFor('DBIRTH a', (x) => x.type === 'DBIRTH' && x.device === 'a', EVENT_MS));
    assert.equal(metric(birthA, 'Inspection/Raw Threshold')?.value, m.threshold.raw);
    assert.equal(metric(birthA, 'Inspection/Threshold Source')?.value, 'model');
    const spMark = host.all().length - 1;

    // (a) MQTT: a's threshold below every normal score -> NG, scores re-centred on it; b untouched.
    const noToken = await command('a', { action: 'threshold', threshold: 0.01 });
    assert.equal(noToken.ok, false);
    assert.match(noToken.error ?? '', /^MQTT control refused: .*need "token"/);
    const set = await command('a', { action: 'threshold', threshold: 0.01, token: TOKEN });
    assert.deepEqual({ ok: set.ok, threshold: set.threshold }, { ok: true, threshold: { raw: 0.01, source: 'runtime', model: m.threshold.raw } });
    const lowA = await scored('a', set.t, 5, 'after the MQTT threshold');
    assert.ok(lowA.every((r) => r.verdict === 'ng' && r.score >= 0.5 && consistent(r, 0.01)), JSON.stringify(lowA.slice(0, 3)));
    assert.ok((await scored('b', set.t, 5, 'while a changed')).every((r) => r.verdict === 'ok' && consistent(r, m.threshold.raw)));
    await status('a', (s) => s.threshold?.source === 'runtime' && s.threshold.raw === 0.01, set.t, 'runtime threshold');
    await ddata('a', 'Inspection/Raw Threshold', (v) => v === 0.01, spMark);
    await ddata('a', 'Inspection/Threshold Source', (v) => v === 'runtime', spMark);
    await h.explain(d.proc.waitLine(/"camera":"a".*"threshold":0\.01,"source":"runtime".*"via":"mqtt".*camera threshold set/, EVENT_MS));

    // (b) refusals name camera and value; both cameras keep being scored.
    const neg = await command('b', { action: 'threshold', threshold: -1, token: TOKEN });
    assert.deepEqual({ ok: neg.ok, error: neg.error }, { ok: false, error: 'camera b: threshold -1 is negative (raw scores are >= 0)' });
    const str = await command('b', { action: 'threshold', threshold: 'high', token: TOKEN });
    assert.match(str.error ?? '', /^camera b: threshold "high" is not a number/);
    const wrong = await command('b', { action: 'threshold', threshold: 1, token: 'guess' });
    assert.equal(wrong.ok, false);
    assert.match(wrong.error ?? '', /^MQTT control refused: .*token/);
    const markBad = Date.now();
    const fromBad = d.proc.lines.length;
    writeFileSync(d.configFile, JSON.stringify({ ...cfg, cameras: cameras(undefined, -1) }));
    d.proc.signal('SIGHUP');
    await h.explain(d.proc.waitLine(/cameras\[1\]\.threshold: camera b: threshold -1 is negative/, EVENT_MS, fromBad));
    await h.explain(d.proc.waitLine(/new camera list rejected; keeping the current cameras/, EVENT_MS, fromBad));
    assert.ok((await scored('b', markBad, 5, 'after the refusals')).every((r) => r.verdict === 'ok' && consistent(r, m.threshold.raw)));
    assert.ok((await scored('a', markBad, 5, 'after the refusals')).every((r) => r.verdict === 'ng' && consistent(r, 0.01)), 'a keeps its run-time threshold');

    // (a) SIGHUP, only a's threshold changed (1.0): run-time override gone, verdicts OK again, no decoder restart.
    const clientsA = camA.clients;
    const clientsB = camB.clients;
    const fromHup = d.proc.lines.length;
    writeFileSync(d.configFile, JSON.stringify({ ...cfg, cameras: cameras(1.0) }));
    const markHup = Date.now();
    d.proc.signal('SIGHUP');
    const reload = await h.explain(d.proc.waitLine(/camera list and models reloaded/, EVENT_MS, fromHup));
    const rl = JSON.parse(reload) as { changed: string[]; added: string[]; removed: string[]; threshold: string[] };
    assert.deepEqual([rl.changed, rl.added, rl.removed, rl.threshold], [[], [], [], ['a']]);
    await status('a', (s) => s.threshold?.source === 'config' && s.threshold.raw === 1, markHup, 'config threshold');
    const highA = await scored('a', markHup, 5, 'after SIGHUP');
    assert.ok(highA.every((r) => r.verdict === 'ok' && r.score < 0.5 && consistent(r, 1.0)), JSON.stringify(highA.slice(0, 3)));
    assert.equal(camA.clients, clientsA, 'a: no new RTSP connection (decoder not restarted)');
    assert.equal(camB.clients, clientsB);
    assert.ok(!d.proc.lines.slice(fromHup).some((l) => /"camera removed"|"camera added"/.test(l)), 'no camera removed or added at the SIGHUP');

    // (c) Drift: b raised to 1.0 at run time (frames stay OK), then its scene changes: OK frames above the quantile.
    const up = await command('b', { action: 'threshold', threshold: 1.0, token: TOKEN });
    assert.equal(up.ok, true, JSON.stringify(up));
    const fromDrift = d.proc.lines.length;
    await camB.kill();
    await camB.start(30000, { images: [drifted] });
    const markScene = Date.now();
    const st = await status('b', (s) => s.drift?.drifting === true, markScene, 'drifting');
    assert.ok((st.drift?.share ?? 0) >= 0.5, JSON.stringify(st.drift));
    assert.ok((await scored('b', markScene, 3, 'after the scene change')).every((r) => r.verdict === 'ok' && r.rawScore > m.threshold.raw));
    await h.explain(d.proc.waitLine(/"camera":"b".*drift: OK parts score above/, EVENT_MS, fromDrift));
    await ddata('b', 'Inspection/Drift Share', (v) => typeof v === 'number' && v >= 0.5, spMark);
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const share = Number(/etstpm_drift_share\{camera="b"\} ([0-9.e-]+)/.exec(metrics)?.[1]);
    assert.ok(share >= 0.5, `b drift share in /metrics: ${share}`);
    assert.match(metrics, /etstpm_drift_share\{camera="a"\} 0\b/);
    assert.match(metrics, /etstpm_camera_threshold_raw\{camera="a"\} 1\b/);
    // Warned once, not per frame: a few more status periods, still one warning.
    await h.explain(waitFor('more results of b', () => results('b', markScene).length >= 15, EVENT_MS));
    assert.equal(d.proc.lines.slice(fromDrift).filter((l) => /drift: OK parts score above/.test(l)).length, 1, 'one drift warning');
    const stA = await status('a', (s) => s.drift !== undefined, markScene, 'a drift');
    assert.equal(stA.drift?.drifting, false, 'a: no drift');
  });
});
