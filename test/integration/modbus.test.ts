// Modbus TCP reject output (docs/sparkplug.md): the daemon against a real Modbus TCP server (pymodbus, test/fixtures/
// modbus_plc.py, an implementation independent of the daemon's npm client) that records every write with its own
// clock. One coil pulse of the configured length per NG frame, before that frame's deadline; a register counter;
// rejects that cannot be written before their deadline are dropped and counted, never written late; the daemon
// keeps scoring while the PLC is down, reports the link on /healthz, /metrics and the status topic, and resumes.
// A hung PLC (SIGSTOP: its kernel keeps accepting connections and bytes) never executes a write the daemon gave
// up on, and the link does not flap; the heartbeat beats at its period only while the daemon runs and inspects.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Camera, Config } from './helpers/daemon';
import { missing, REPO, tmpDir } from './helpers/env';
import { CameraStatus, Harness, ResultMsg } from './helpers/harness';
import { alwaysNgCopy, ModelManifest } from './helpers/model';
import { missingPymodbus, ModbusPlc, Pulse } from './helpers/modbus-plc';
import { waitFor } from './helpers/wait';

const START_MS = 60000;
const EVENT_MS = 20000;

const skip = missing('daemon', 'mosquitto', 'ffmpeg', 'venv') || missingPymodbus();
const models = tmpDir('etstpm-modbus-models-');
let ngModel: { dir: string; manifest: ModelManifest };

before(() => {
  if (skip) return;
  ngModel = alwaysNgCopy(join(REPO, 'test', 'unit', 'fixtures', 'tiny-model'), join(models.dir, 'ng'));
});
after(() => models.remove());

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface LogLine { level: number; time: number; msg: string }
const logLines = (lines: string[]): LogLine[] => lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as LogLine);

interface RejectMsg { camera: string; seq: number; capturedAt: number; deadline: number; score: number }
type StatusWithPlc = CameraStatus & { plc?: { plc: string; link: string; written: number; dropped: number } };

const cam = (id: string, fps: number): Camera => ({ id, url: `synthetic://?fps=${fps}&size=64&seed=${id.length}` });

async function getText(port: number, path: string): Promise<{ status: number; text: string }> {
  const r = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: r.status, text: await r.text() };
}

function metricValue(text: string, name: string, labels: Record<string, string>): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const ls = line.slice(name.length + 1, line.indexOf('}'));
    if (Object.entries(labels).every(([k, v]) => ls.includes(`${k}="${v}"`))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return NaN;
}

/** `outputs` gets the PLC's port (known once it listens). */
async function start(h: Harness, plc: ModbusPlc, cameras: Camera[], outputs: (port: number) => unknown[], extra: Config = {}) {
  h.model = ngModel;
  await h.startBroker();
  await plc.start();
  const { modbus, ...rest } = extra as { modbus?: Config };
  const cfg = await h.config(cameras, { modbus: { outputs: outputs(plc.port), reconnectMinMs: 200, reconnectMaxMs: 1000, ...modbus }, ...rest }, true);
  const httpPort = (cfg.http as { port: number }).port;
  return { d: h.daemon(cfg), httpPort };
}

describe('Modbus TCP reject output against a pymodbus server', { skip }, () => {
  test('one pulse per NG frame before its deadline, a register counter, PLC outage and recovery', async () => {
    const h = new Harness();
    const plc = new ModbusPlc({ 10: 41 });
    try {
      const PULSE = 150;
      const { d, httpPort } = await start(h, plc, [cam('cam1', 2), cam('cam2', 2)], (port) => [
        { camera: 'cam1', host: '127.0.0.1', port, type: 'coil', address: 3, pulseMs: PULSE, gapMs: 50 },
        { camera: 'cam2', host: '127.0.0.1', port, type: 'register', address: 10 },
      ], { reject: { deadlineMs: 5000 } });

      // The first write after connecting puts the coil in its safe state (OFF).
      await h.explain(waitFor('coil reset on connect', () => plc.coilWrites(3).length > 0, START_MS));
      assert.deepEqual(plc.coilWrites(3)[0].values, [0], 'first coil write is OFF');

      const pulses = await h.explain(plc.waitPulses(3, 6, START_MS));
      // Every pulse is at least pulseMs long at the PLC (liveness bound only above).
      for (const p of pulses) {
        assert.ok(p.off! - p.on >= PULSE, `pulse ${p.off! - p.on} ms >= ${PULSE} ms`);
        assert.ok(p.off! - p.on < PULSE + 10000, 'the coil goes low again');
      }
      // One pulse per NG frame, in order, each after its capture and before its deadline.
      const metrics = await getText(httpPort, '/metrics');
      const dropped = ['deadline', 'disconnected', 'timeout', 'error', 'queue_full']
        .reduce((a, r) => a + metricValue(metrics.text, 'etstpm_modbus_rejects_dropped_total', { camera: 'cam1', reason: r }), 0);
      assert.equal(dropped, 0, 'no reject dropped with the PLC up and a 5 s deadline');
      const written = metricValue(metrics.text, 'etstpm_modbus_rejects_written_total', { camera: 'cam1' });
      const allPulses = await h.explain(waitFor(`PLC saw ${written} pulses`, () => {
        const ps = plc.pulses(3);
        return ps.length >= written ? ps : undefined;
      }, EVENT_MS));
      // Read after the pulses: the PLC is written before the MQTT reject is queued, so a list read earlier can lack
      // the rejects of the last pulses.
      const rejects = await h.explain(waitFor(`an MQTT reject for each of ${allPulses.length} pulses`, () => {
        const rs = h.mqtt.json<RejectMsg>(h.topic('cam1', 'reject'));
        return rs.length >= allPulses.length ? rs : undefined;
      }, EVENT_MS));
      allPulses.forEach((p: Pulse, k: number) => {
        const r = rejects[k];
        assert.ok(p.on >= r.capturedAt, `pulse ${k} after its frame's capture`);
        assert.ok(p.on <= r.deadline, `pulse ${k} at ${p.on} before deadline ${r.deadline}`);
      });
      const results = h.mqtt.json<ResultMsg>(h.topic('cam1', 'result'));
      assert.ok(results.every((r) => r.verdict === 'ng'));

      // Register output: continues from the PLC's value (41) by one per NG frame.
      await h.explain(waitFor('3 register writes', () => plc.registerWrites(10).length >= 3, EVENT_MS));
      const regs = plc.registerWrites(10).map((w) => w.values[0]);
      assert.deepEqual(regs, regs.map((_, i) => 42 + i), 'counter 42, 43, ... from the preset 41');

      // Link state while up.
      const hz = JSON.parse((await getText(httpPort, '/healthz')).text) as { modbus: Record<string, { link: string }> };
      assert.equal(hz.modbus.cam1.link, 'up');
      assert.equal(metricValue(metrics.text, 'etstpm_modbus_link_up', { plc: `127.0.0.1:${plc.port}` }), 1);

      // PLC down: scoring goes on, the link shows down everywhere, rejects are dropped as "disconnected".
      await plc.kill();
      const down = Date.now();
      await h.explain(h.mqtt.waitJson<StatusWithPlc>(h.topic('cam1', 'status'), (s) => s.plc?.link === 'down', EVENT_MS, down, 'plc link down'));
      await h.explain(waitFor('results while the PLC is down', () => h.mqtt.json(h.topic('cam1', 'result'), down).length >= 4, EVENT_MS));
      await h.explain(waitFor('/metrics shows the outage', async () => {
        const t = (await getText(httpPort, '/metrics')).text;
        return metricValue(t, 'etstpm_modbus_link_up', { plc: `127.0.0.1:${plc.port}` }) === 0
          && metricValue(t, 'etstpm_modbus_rejects_dropped_total', { camera: 'cam1', reason: 'disconnected' }) > 0;
      }, EVENT_MS));
      const hzDown = await getText(httpPort, '/healthz');
      assert.equal(hzDown.status, 200, 'a PLC outage does not make the daemon unhealthy (it keeps scoring)');
      assert.equal((JSON.parse(hzDown.text) as { modbus: Record<string, { link: string }> }).modbus.cam1.link, 'down');
      assert.ok(d.running);

      // PLC back: reconnect (backoff <= 1 s here), safe state, pulses resume.
      const writesBefore = plc.writes.length;
      await plc.start();
      const back = Date.now();
      await h.explain(h.mqtt.waitJson<StatusWithPlc>(h.topic('cam1', 'status'), (s) => s.plc?.link === 'up', EVENT_MS, back, 'plc link up again'));
      const resumed = await h.explain(plc.waitPulses(3, 2, EVENT_MS, back));
      assert.ok(resumed.every((p) => p.off! - p.on >= PULSE));
      assert.deepEqual(plc.writes.slice(writesBefore).find((w) => w.fc === 5)?.values, [0], 'coil reset first after the reconnect');
      await h.explain(d.proc.waitLine(/PLC reconnected/, EVENT_MS));
    } finally {
      await plc.stop();
      await h.close();
    }
  });

  test('a reject that cannot be written before its deadline is dropped and counted, never written late', async () => {
    const h = new Harness();
    const plc = new ModbusPlc();
    try {
      // Pulses of 1.5 s at 5 NG frames/s and an 800 ms deadline: most rejects wait behind a pulse past their deadline.
      const { d, httpPort } = await start(h, plc, [cam('cam1', 5)], (port) => [
        { camera: 'cam1', host: '127.0.0.1', port, type: 'coil', address: 0, pulseMs: 1500, gapMs: 100 },
      ], { reject: { deadlineMs: 800 } });
      await h.explain(plc.waitPulses(0, 3, START_MS));
      const m = await h.explain(waitFor('deadline drops counted', async () => {
        const t = (await getText(httpPort, '/metrics')).text;
        return metricValue(t, 'etstpm_modbus_rejects_dropped_total', { camera: 'cam1', reason: 'deadline' }) >= 3 ? t : undefined;
      }, EVENT_MS));
      const written = metricValue(m, 'etstpm_modbus_rejects_written_total', { camera: 'cam1' });
      await d.stop();
      const rejects = h.mqtt.json<RejectMsg>(h.topic('cam1', 'reject'));
      const pulses = plc.pulses(0);
      assert.ok(pulses.length >= written, `${pulses.length} pulses for ${written} written`);
      // Every pulse started inside the validity window of some NG frame: none is late.
      pulses.forEach((p, i) => {
        assert.ok(rejects.some((r) => p.on >= r.capturedAt && p.on <= r.deadline), `pulse at ${p.on} lies within a frame's deadline`);
        // The stop cuts a pulse in progress short (coil OFF within the stop budget); all others are full length.
        if (i < pulses.length - 1) assert.ok(p.off! - p.on >= 1500, `pulse ${i}: ${p.off! - p.on} ms`);
      });
      assert.ok(pulses.length < rejects.length, 'fewer pulses than NG frames: the rest were dropped');
      assert.ok(d.proc.lines.some((l) => l.includes('reject dropped') && l.includes('"reason":"deadline"')), 'drops are logged');
      // (the server's log line may reach this process a moment after the daemon has exited)
      await h.explain(waitFor('the coil OFF after the daemon stopped', () => plc.coilWrites(0).at(-1)?.values[0] === 0, EVENT_MS));
    } finally {
      await plc.stop();
      await h.close();
    }
  });

  test('a hung PLC (SIGSTOP) never executes a write the daemon gave up on; the link goes down once, not flapping', async (t) => {
    const h = new Harness();
    const plc = new ModbusPlc();
    try {
      const PULSE = 400;
      const HANG_MS = 10000;
      const { d, httpPort } = await start(h, plc, [cam('cam1', 2)], (port) => [
        { camera: 'cam1', host: '127.0.0.1', port, type: 'coil', address: 5, pulseMs: PULSE, gapMs: 50 },
      ], { reject: { deadlineMs: 1000 }, modbus: { requestTimeoutMs: 500, reconnectMinMs: 200, reconnectMaxMs: 2000 } });
      await h.explain(plc.waitPulses(5, 2, START_MS));

      // Stop the PLC while a pulse is ON, a moment after its ON was answered: the daemon's next request (the OFF's
      // liveness read) then meets a stopped PLC. (A write already on its way when a PLC hangs cannot be recalled by
      // any client; docs/sparkplug.md, "Never late". Stopping right after an answered write keeps this test about
      // what the daemon does once the PLC stops answering.)
      const seen = plc.writes.length;
      await h.explain(waitFor('a coil ON', () => plc.writes.slice(seen).some((w) => w.fc === 5 && w.values[0] === 1), EVENT_MS));
      await sleep(50);
      plc.pause();
      const stopped = Date.now();
      const linesAtStop = d.proc.lines.length;
      await sleep(HANG_MS);
      const hangLog = logLines(d.proc.lines.slice(linesAtStop));
      plc.resume();
      const resumed = Date.now();

      await h.explain(d.proc.waitLine(/PLC reconnected/, EVENT_MS, linesAtStop));
      await h.explain(plc.waitPulses(5, 2, EVENT_MS, resumed));
      const metrics = (await getText(httpPort, '/metrics')).text;
      const written = metricValue(metrics, 'etstpm_modbus_rejects_written_total', { camera: 'cam1' });
      const drops = ['deadline', 'disconnected', 'timeout'].map((r) => metricValue(metrics, 'etstpm_modbus_rejects_dropped_total', { camera: 'cam1', reason: r }));
      await d.stop();
      const rejects = h.mqtt.json<RejectMsg>(h.topic('cam1', 'reject'));
      await h.explain(waitFor('the coil OFF after the daemon stopped', () => plc.coilWrites(5).at(-1)?.values[0] === 0, EVENT_MS));

      const stale = plc.writes.filter((w) => w.open !== true);
      const pulses = plc.pulses(5);
      const ons = plc.coilWrites(5).filter((w) => w.values[0] === 1);
      const all = logLines(d.proc.lines.slice(linesAtStop));
      const warns = hangLog.filter((l) => l.level >= 40);
      const count = (re: RegExp): number => all.filter((l) => re.test(l.msg)).length;
      // Connection attempts the hung PLC accepted (its kernel did) but never answered, between "down" and "reconnected".
      const failedAttempts = (all.find((l) => /PLC reconnected/.test(l.msg)) as { failedAttempts?: number } | undefined)?.failedAttempts ?? NaN;
      t.diagnostic(`hang ${resumed - stopped} ms: writes after resume ${plc.writes.filter((w) => w.t >= resumed).length}, stale ${stale.length} `
        + `(ON ${stale.filter((w) => w.values[0] === 1).length}), ON writes ${ons.length} for ${written} written, drops ${drops.join('/')}, `
        + `warnings during the hang ${warns.length}, "link down" ${count(/PLC link down|not reachable/)}, "reconnected" ${count(/PLC reconnected/)}, `
        + `unanswered connection attempts ${failedAttempts}`);
      // Not one write ran on a connection the daemon had already reset or closed.

      assert.deepEqual(stale, [], 'no write executed after the daemon abandoned it');
      // Every ON edge lies in some NG frame's capture..deadline window, and the PLC saw exactly the ON writes the
      // daemon counted as written: none of those it counted as dropped ran later.
      for (const p of pulses) assert.ok(rejects.some((r) => p.on >= r.capturedAt && p.on <= r.deadline), `ON edge at ${p.on} inside a frame's deadline`);
      assert.equal(ons.length, written, `${ons.length} ON writes at the PLC for ${written} rejects counted as written`);
      assert.equal(pulses.length, written, 'one ON edge per written reject');
      assert.ok(drops.reduce((a, b) => a + b, 0) >= 10, `rejects dropped during the hang (deadline/disconnected/timeout ${drops.join('/')})`);
      // The pulse ON when the PLC stopped is ended by the reset on reconnect, the first write after the hang.
      const after = plc.coilWrites(5).filter((w) => w.t >= resumed);
      assert.deepEqual(after[0]?.values, [0], 'first write after the hang: coil OFF');

      // The link went down once and came back once; a handful of warnings, not one per write or per attempt.
      assert.equal(all.filter((l) => /PLC link down/.test(l.msg)).length, 1, 'one "link down"');
      assert.equal(all.filter((l) => /PLC reconnected/.test(l.msg)).length, 1, 'one "reconnected"');
      assert.ok(warns.length >= 1 && warns.length <= 4, `${warns.length} warnings during a ${HANG_MS} ms hang:\n${warns.map((w) => w.msg).join('\n')}`);
      // Backoff over connections the PLC accepted but did not answer: 200, 400, 800 ... 2000 ms (plus each 500 ms
      // wait for an answer) gives about 6 in 10 s; without backoff it would be 14.
      assert.ok(failedAttempts >= 1 && failedAttempts <= 10, `${failedAttempts} unanswered attempts in ${HANG_MS} ms`);
      assert.ok(resumed - stopped >= HANG_MS);
    } finally {
      await plc.stop();
      await h.close();
    }
  });

  test('heartbeat: beats at its period while the daemon runs and inspects; stops when it is stopped or its camera is dead', { skip: missing('rtsp-server', 'shared') }, async () => {
    const h = new Harness();
    const plc = new ModbusPlc({ 20: 7 });
    try {
      const PERIOD = 300;
      h.model = ngModel;
      await h.startBroker();
      await plc.start();
      const rtsp = await h.camera({ fps: 5 });
      const cfg = await h.config([cam('cam1', 4), { id: 'rtsp', url: rtsp.url }, { id: 'dead', url: 'rtsp://127.0.0.1:1/none' }], {
        modbus: {
          reconnectMinMs: 200,
          reconnectMaxMs: 1000,
          heartbeats: [
            { host: '127.0.0.1', port: plc.port, type: 'register', address: 20, periodMs: PERIOD, cameras: ['cam1'] },
            { host: '127.0.0.1', port: plc.port, type: 'coil', address: 21, periodMs: PERIOD, cameras: ['cam1'] },
            // Watches a camera that never delivers a frame: never beats.
            { host: '127.0.0.1', port: plc.port, type: 'coil', address: 22, periodMs: PERIOD, cameras: ['dead'] },
            // Watches the RTSP camera, which goes away below.
            { host: '127.0.0.1', port: plc.port, type: 'register', address: 23, periodMs: PERIOD, cameras: ['rtsp'] },
          ],
        },
      }, true);
      const httpPort = (cfg.http as { port: number }).port;
      const d = h.daemon(cfg);
      await h.explain(waitFor('8 register beats', () => plc.registerWrites(20).length >= 8, START_MS));

      // The register counts on from the PLC's value (7); the coil toggles; both at about the period.
      const regs = plc.registerWrites(20);
      assert.deepEqual(regs.map((w) => w.values[0]), regs.map((_, i) => 8 + i), 'register 8, 9, ... from the preset 7');
      const gaps = regs.slice(1).map((w, i) => w.t - regs[i].t).sort((a, b) => a - b);
      // At the period, not faster (a single gap may be short when the beat before it was delayed).
      const span = regs.at(-1)!.t - regs[0].t;
      assert.ok(regs.length - 1 <= span / PERIOD + 1, `${regs.length} beats in ${span} ms at a ${PERIOD} ms period`);
      assert.ok(gaps[Math.floor(gaps.length / 2)] < PERIOD * 5, `median gap ${gaps[Math.floor(gaps.length / 2)]} ms`);
      const coil = plc.coilWrites(21).map((w) => w.values[0]);
      assert.ok(coil.length >= 4);
      coil.forEach((v, i) => i > 0 && assert.notEqual(v, coil[i - 1], `coil toggles (${coil.join('')})`));
      assert.equal(plc.coilWrites(22).length, 0, 'no beat for a camera that never delivered a frame');
      const hz = JSON.parse((await getText(httpPort, '/healthz')).text) as { modbusHeartbeats: Record<string, { beating: boolean; reason?: string }> };
      assert.equal(hz.modbusHeartbeats[`127.0.0.1:${plc.port}/register/20`].beating, true);
      const dead = hz.modbusHeartbeats[`127.0.0.1:${plc.port}/coil/22`];
      assert.equal(dead.beating, false);
      assert.match(dead.reason ?? '', /camera dead/);
      const m = (await getText(httpPort, '/metrics')).text;
      assert.ok(metricValue(m, 'etstpm_modbus_heartbeats_written_total', { heartbeat: `127.0.0.1:${plc.port}/register/20` }) >= 8);
      assert.equal(metricValue(m, 'etstpm_modbus_heartbeat_beating', { heartbeat: `127.0.0.1:${plc.port}/coil/22` }), 0);

      // The RTSP camera stops delivering: its heartbeat stops once no frame was scored for staleMs (here
      // ingest.stallTimeoutMs, 2 s), while the one watching cam1 goes on.
      await h.explain(waitFor('beats for the RTSP camera', () => plc.registerWrites(23).length >= 3, START_MS));
      const hbRtsp = `127.0.0.1:${plc.port}/register/23`;
      const killed = Date.now();
      await rtsp.kill();
      const paused = await h.explain(waitFor('the RTSP camera\'s heartbeat paused', async () => {
        const s = (JSON.parse((await getText(httpPort, '/healthz')).text) as typeof hz).modbusHeartbeats[hbRtsp];
        return s.beating ? undefined : s;
      }, EVENT_MS));
      assert.match(paused.reason ?? '', /camera rtsp has no scored frame for \d+ ms/);
      const beatsAtPause = plc.registerWrites(23).length;
      const cam1Beats = plc.registerWrites(20).length;
      await sleep(PERIOD * 5);
      assert.equal(plc.registerWrites(23).length, beatsAtPause, 'no beat while its camera delivers nothing');
      assert.ok(plc.registerWrites(20).length > cam1Beats, 'the heartbeat watching cam1 goes on');
      // (frames already decoded may still be scored for a moment after the kill; generous margin)
      assert.ok(plc.registerWrites(23).every((w) => w.t < killed + 2000 + 3000), 'last beat within staleMs (+ margin) of the camera going away');
      const pausedLines = logLines(d.proc.lines).filter((l) => /heartbeat paused/.test(l.msg));
      assert.equal(pausedLines.length, 1, 'one "heartbeat paused" line, not one per period');

      // A stopped (hung) daemon does not beat; it beats again once it runs.
      d.proc.signal('SIGSTOP');
      const stopped = Date.now();
      await sleep(PERIOD * 8);
      const resumed = Date.now();
      d.proc.signal('SIGCONT');
      // A beat already on its way when the daemon stopped may land just after; nothing later.
      const during = plc.writes.filter((w) => w.t > stopped + 200 && w.t < resumed);
      assert.deepEqual(during, [], 'no beat while the daemon is stopped');
      await h.explain(waitFor('beats again', () => plc.registerWrites(20).filter((w) => w.t > resumed).length >= 2, EVENT_MS));

      // SIGTERM: no beat after the daemon is gone.
      await d.stop();
      const gone = Date.now();
      await sleep(PERIOD * 5);
      assert.deepEqual(plc.writes.filter((w) => w.t > gone && (w.address === 20 || w.address === 21)), [], 'no beat after the daemon exited');
      assert.deepEqual(plc.writes.filter((w) => w.open !== true), [], 'every write on a live connection');
    } finally {
      await plc.stop();
      await h.close();
    }
  });
});
