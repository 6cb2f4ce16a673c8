/**
 * Per-camera threshold override and drift window (docs/configuration.md, "Threshold override"; docs/daemon.md,
 * "Drift"): the normalisation re-centred on the override, refusals naming camera and value, the drift window's
 * share and its once-only warnings, and the daemon applying both with the real tiny ONNX model (config, SIGHUP
 * reload without a decoder restart, console HTTP route, the console's control policy for MQTT commands).
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadConfig } from '../../src/config/load';
import { validateCameras } from '../../src/config/cameras';
import type { CameraConfig, DaemonConfig } from '../../src/config/types';
import { createConsole } from '../../src/console';
import { Daemon } from '../../src/daemon';
import { readManifest } from '../../src/infer/manifest';
import { DriftWindow } from '../../src/score/drift';
import { normalize, verdict } from '../../src/score/normalize';
import { parseThreshold, ThresholdError, withThreshold } from '../../src/score/threshold';
import { TestCamera, TestOutput } from './daemon-parts';
import { captureLog, silentLog, TINY_MODEL, until } from './helpers';

const tmp = mkdtempSync(join(tmpdir(), 'etstpm-threshold-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe('threshold override: normalisation and validation', () => {
  const n = { threshold: 0.45, min: 0, max: 0.5 };

  it('re-centres the normalisation on the override: 0.5 stays the decision point, the scale stays the same', () => {
    const o = withThreshold(n, 0.2);
    assert.deepEqual(o, { threshold: 0.2, min: 0, max: 0.5 });
    assert.equal(withThreshold(n, null), n, 'no override: the model normalisation itself');
    assert.equal(normalize(0.2, o), 0.5);
    assert.equal(verdict(normalize(0.2, o)), 'ng', 'at the override: NG');
    assert.equal(verdict(normalize(0.1999, o)), 'ok');
    assert.equal(verdict(normalize(0.3, n)), 'ok', 'the model would pass 0.3 ...');
    assert.equal(verdict(normalize(0.3, o)), 'ng', '... the lowered threshold rejects it');
    // Same slope: a raw step moves the score by the same amount with or without override.
    assert.ok(Math.abs((normalize(0.3, o) - normalize(0.25, o)) - (normalize(0.45, n) - normalize(0.4, n))) < 1e-12);
  });

  it('refuses non-numbers, non-finite and negative values, naming camera and value', () => {
    assert.equal(parseThreshold('cam1', 0), 0);
    assert.equal(parseThreshold('cam1', 1.5), 1.5);
    const bad: Array<[unknown, RegExp]> = [
      ['0.5', /^camera cam1: threshold "0\.5" is not a number/],
      [true, /^camera cam1: threshold true is not a number/],
      [{}, /^camera cam1: threshold \[object Object\] is not a number/],
      [NaN, /^camera cam1: threshold NaN is not finite/],
      [Infinity, /^camera cam1: threshold Infinity is not finite/],
      [-0.1, /^camera cam1: threshold -0\.1 is negative/],
    ];
    for (const [v, re] of bad) assert.throws(() => parseThreshold('cam1', v), (e: Error) => e instanceof ThresholdError && re.test(e.message), String(v));
  });

  it('config: cameras[].threshold is optional, checked, and named by index and camera', () => {
    const ok = validateCameras([{ id: 'a', url: 'synthetic://', threshold: 0.3 }, { id: 'b', url: 'synthetic://' }]);
    assert.deepEqual(ok.errors, []);
    assert.equal(ok.cameras[0].threshold, 0.3);
    assert.equal('threshold' in ok.cameras[1], false, 'absent = the model threshold');
    const bad = validateCameras([{ id: 'a', url: 'synthetic://', threshold: -1 }, { id: 'b', url: 'synthetic://', threshold: 'high' }]);
    assert.deepEqual(bad.errors, [
      'cameras[0].threshold: camera a: threshold -1 is negative (raw scores are >= 0)',
      'cameras[1].threshold: camera b: threshold "high" is not a number (expected a raw score >= 0, as model.json threshold.raw)',
    ]);
  });
});

describe('drift window', () => {
  const ref = { raw: 1, expectedShare: 0.01 };

  it('share of OK scores at or above the calibration quantile over the last N, judged on a full window', () => {
    const w = new DriftWindow({ window: 10, warnShare: 0.3 });
    w.reset(ref);
    assert.deepEqual(w.state(), { share: null, expectedShare: 0.01, reference: 1, frames: 0, window: 10, warnShare: 0.3, drifting: false });
    for (let i = 0; i < 9; i++) assert.equal(w.add(i < 4 ? 1 : 0.5, ref), null, 'not judged before the window is full');
    assert.equal(w.state()?.share, 4 / 9);
    assert.equal(w.add(0.2, ref), 'drifting', 'full window, 4/10 >= 0.3: reported once');
    assert.equal(w.add(2, ref), null, 'still drifting: not reported again');
    assert.equal(w.state()?.frames, 10, 'the window keeps the last 10');
    // Old high scores leave the window; recovery needs < half the level (0.15).
    const changes = Array.from({ length: 10 }, () => w.add(0.1, ref));
    assert.deepEqual(changes.filter((c) => c !== null), ['recovered']);
    assert.equal(w.state()?.share, 0);
    assert.equal(w.state()?.drifting, false);
  });

  it('another reference (another model) starts the window afresh', () => {
    const w = new DriftWindow({ window: 4, warnShare: 0.5 });
    for (let i = 0; i < 4; i++) w.add(5, ref);
    assert.equal(w.state()?.drifting, true);
    w.add(5, { raw: 10, expectedShare: null });
    assert.deepEqual(w.state(), { share: 0, expectedShare: null, reference: 10, frames: 1, window: 4, warnShare: 0.5, drifting: false });
  });

  it('the drift reference comes from model.json threshold.details.drift_reference, else the threshold (frr_target, else 1 - quantile, else hold-out counts)', () => {
    const variants: Array<[Record<string, unknown>, number | null]> = [
      [{ frr_target: 0.002, quantile: 0.998, holdout_images: 500, holdout_false_rejects: 1 }, 0.002],
      [{ quantile: 0.99, images: 40 }, 1 - 0.99],
      [{ f1: 0.9, holdout_images: 200, holdout_false_rejects: 3 }, 3 / 200],
      [{}, null],
      // The drift reference of current calibrations: a quantile of the good scores, below the threshold.
      [{ frr_target: 0.01, drift_reference: { quantile: 0.9, raw: 0.25, expected_share_ok: 0.09 } }, 0.09],
    ];
    for (const [details, want] of variants) {
      const dir = join(tmp, `m-${Math.random().toString(16).slice(2)}`);
      cpSync(TINY_MODEL, dir, { recursive: true });
      const m = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')) as Record<string, any>;
      m.threshold.details = details;
      writeFileSync(join(dir, 'model.json'), JSON.stringify(m));
      const ref = readManifest(dir).driftReference;
      assert.equal(ref.expectedShare, want, JSON.stringify(details));
      assert.equal(ref.raw, details.drift_reference ? 0.25 : m.threshold.raw, 'reference score');
    }
  });
});

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

function daemonConfig(cameras: Array<Partial<CameraConfig> & { id: string }>, httpPort: number): DaemonConfig {
  const r = loadConfig({
    argv: ['--http-port', String(httpPort), '--model-dir', TINY_MODEL, '--model-providers', 'cpu', '--cameras', JSON.stringify(cameras.map((c) => ({ url: 'synthetic://', ...c })))],
    env: {},
  });
  assert.equal(r.kind, 'ok', JSON.stringify(r));
  const c = (r as { config: DaemonConfig }).config;
  return { ...c, drift: { window: 4, warnShare: 0.5 } };
}

describe('daemon: threshold per camera and drift, with the tiny ONNX model', () => {
  it('config, console route, SIGHUP without decoder restart; bad values refused; drift from OK frames only', async () => {
    // Tiny model: a uniform frame of value v scores |v/255 - 0.5|; model threshold 0.45 (model.json).
    const out = new TestOutput();
    const cams = new Map<string, TestCamera>();
    const logs = captureLog('info');
    const port = await freePort();
    const cfg = daemonConfig([{ id: 'top', threshold: 0.2 }, { id: 'side' }], port);
    const d = new Daemon(cfg, logs.log, {
      env: {},
      publisher: () => out,
      camera: (c: CameraConfig) => {
        const cam = new TestCamera(c);
        cams.set(c.id, cam);
        return cam;
      },
    });
    const base = `http://127.0.0.1:${port}`;
    const last = (cam: string) => out.results.filter((r) => r.camera === cam).at(-1);
    const push = async (cam: string, v: number) => {
      const n = out.results.filter((r) => r.camera === cam).length;
      cams.get(cam)?.push(v);
      await until(() => out.results.filter((r) => r.camera === cam).length === n + 1, 5000, `${cam} result`);
      return last(cam)!;
    };
    try {
      await d.start();
      out.setConnected(true);
      await until(() => d.ready, 5000, 'ready');
      // 1. From the config: top at 0.2, side at the model's 0.45. Value 60 scores 0.2647.
      assert.deepEqual(d.activeThreshold('top'), { raw: 0.2, source: 'config', model: 0.45 });
      assert.deepEqual(d.activeThreshold('side'), { raw: 0.45, source: 'model', model: 0.45 });
      let t = await push('top', 60);
      assert.equal(t.verdict, 'ng');
      assert.ok(Math.abs(t.score - ((t.rawScore - 0.2) / 0.5 + 0.5)) < 1e-6, 'score re-centred on 0.2');
      const s = await push('side', 60);
      assert.equal(s.verdict, 'ok');
      assert.ok(Math.abs(s.score - ((s.rawScore - 0.45) / 0.5 + 0.5)) < 1e-6);

      // 2. Console (open: loopback, no token): raise top to 0.3 -> OK; the status says runtime.
      const r = await fetch(`${base}/api/cameras/top/threshold`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ threshold: 0.3 }) });
      assert.equal(r.status, 200);
      assert.deepEqual(await r.json(), { camera: 'top', threshold: { raw: 0.3, source: 'runtime', model: 0.45 } });
      t = await push('top', 60);
      assert.equal(t.verdict, 'ok');
      assert.equal(out.statuses.filter((x) => x.camera === 'top').at(-1)?.threshold?.source, 'runtime', 'a change publishes the status');
      assert.ok(logs.lines.some((l) => l.msg === 'camera threshold set' && l.camera === 'top' && l.threshold === 0.3 && l.source === 'runtime' && l.via === 'console'));
      // Refusals name camera and value; nothing changes; side keeps being scored.
      for (const [body, re] of [[{ threshold: -2 }, /camera top: threshold -2 is negative/], [{ threshold: 'x' }, /camera top: threshold "x" is not a number/],
        [{ value: 1 }, /unknown field\(s\) value/], [{}, /body needs \{"threshold"/]] as const) {
        const bad = await fetch(`${base}/api/cameras/top/threshold`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
        assert.equal(bad.status, 400);
        assert.match(((await bad.json()) as { error: string }).error, re);
      }
      const unknown = await fetch(`${base}/api/cameras/nope/threshold`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"threshold":1}' });
      assert.equal(unknown.status, 404);
      assert.equal(d.activeThreshold('top')?.raw, 0.3);
      assert.equal((await push('side', 60)).verdict, 'ok');
      const metrics = await (await fetch(`${base}/metrics`)).text();
      assert.match(metrics, /etstpm_camera_threshold_raw\{camera="top"\} 0\.3\b/);
      assert.match(metrics, /etstpm_camera_threshold_raw\{camera="side"\} 0\.45\b/);

      // 3. SIGHUP with only top's threshold changed: same decoder, runtime override gone, config value applied.
      const topCam = cams.get('top');
      const sideCam = cams.get('side');
      const rr = await d.reloadCameras([{ ...cfg.cameras[0], threshold: 0.25 }, cfg.cameras[1]]);
      assert.deepEqual({ changed: rr.changed, added: rr.added, removed: rr.removed, threshold: rr.threshold }, { changed: [], added: [], removed: [], threshold: ['top'] });
      assert.equal(cams.get('top'), topCam, 'threshold-only change: decoder not restarted');
      assert.equal(cams.get('side'), sideCam);
      assert.deepEqual(d.activeThreshold('top'), { raw: 0.25, source: 'config', model: 0.45 });
      t = await push('top', 60);
      assert.equal(t.verdict, 'ng', '0.2647 >= 0.25');
      // Threshold removed from the config: back to the model's.
      await d.reloadCameras([{ ...cfg.cameras[0], threshold: undefined }, cfg.cameras[1]]);
      assert.deepEqual(d.activeThreshold('top'), { raw: 0.45, source: 'model', model: 0.45 });
      assert.equal(cams.get('top'), topCam);

      // 4. Drift: side raised to 0.6 at run time; black frames (raw 0.5) are now OK but above the calibration
      // quantile (model threshold 0.45): the full window (4) drifts, logged once; grey frames recover it.
      d.setRuntimeThreshold('side', 0.6, 'test');
      for (let i = 0; i < 5; i++) assert.equal((await push('side', 0)).verdict, 'ok');
      const st = d.cameraStatus(sideCam!);
      assert.deepEqual(st.drift, { share: 1, expectedShare: null, reference: 0.45, frames: 4, window: 4, warnShare: 0.5, drifting: true });
      assert.equal(logs.lines.filter((l) => String(l.msg).startsWith('drift: OK parts') && l.camera === 'side').length, 1, 'warned once');
      for (let i = 0; i < 4; i++) await push('side', 127);
      assert.equal(d.cameraStatus(sideCam!).drift?.share, 0);
      assert.equal(logs.lines.filter((l) => l.msg === 'drift: recovered' && l.camera === 'side').length, 1);
      // NG frames do not enter the window.
      d.setRuntimeThreshold('side', null, 'test');
      await push('side', 0);
      assert.equal(last('side')?.verdict, 'ng');
      assert.equal(d.cameraStatus(sideCam!).drift?.share, 0);
      assert.throws(() => d.setRuntimeThreshold('side', Infinity, 'test'), /camera side: threshold Infinity is not finite/);
      assert.throws(() => d.setRuntimeThreshold('nope', 1, 'test'), /camera nope: no such camera/);
    } finally {
      await d.stop();
    }
  });
});

describe('console control policy for the MQTT threshold command', () => {
  const setup = (host: string, token: string) => {
    const set: Array<[string, unknown]> = [];
    const parts = createConsole({
      options: { enabled: true, token, ngHistory: 5, trendSeconds: 60, reviewDir: join(tmp, 'review'), mqttCommands: true,
        capture: { root: join(tmp, 'captures'), everyN: 1, maxImages: 10, maxBytes: 1e7, minFreeBytes: 0 } },
      host,
      topicPrefix: 'test',
      model: { name: 'm', version: 'v1', method: 'stpm', thresholdMethod: null, finetune: null, width: 64, height: 64, normalization: { threshold: 1, min: 0, max: 2 } },
      sources: {
        health: () => ({ ok: true }),
        cameras: () => [{ camera: 'c1', state: 'streaming', fps: 1, captured: 0, processed: 0, dropped: 0, ng: 0, provider: 'cpu', model: { name: 'm', version: 'v1' }, since: 0 }],
        setThreshold: (camera, value) => {
          set.push([camera, value]);
          return { raw: parseThreshold(camera, value), source: 'runtime', model: 1 };
        },
      },
      mqtt: null,
      log: silentLog(),
    });
    return { hub: parts.hub, set };
  };

  it('token mode: the payload must carry the console token; read-only: refused; open: allowed', async () => {
    const tok = setup('0.0.0.0', 's3cret');
    const noToken = await tok.hub.command('c1', 'threshold', { threshold: 1.5 });
    assert.equal(noToken.ok, false);
    assert.match(noToken.error ?? '', /^MQTT control refused: .*need "token"/);
    const wrong = await tok.hub.command('c1', 'threshold', { threshold: 1.5, token: 'wrong' });
    assert.equal(wrong.ok, false);
    assert.match(wrong.error ?? '', /^MQTT control refused: .*token/);
    assert.doesNotMatch(wrong.error ?? '', /s3cret|wrong'/, 'the token is never echoed');
    assert.deepEqual(tok.set, [], 'nothing applied without the token');
    assert.deepEqual(await tok.hub.command('c1', 'threshold', { threshold: 1.5, token: 's3cret' }), { action: 'threshold', ok: true, threshold: { raw: 1.5, source: 'runtime', model: 1 } });
    const bad = await tok.hub.command('c1', 'threshold', { threshold: -3, token: 's3cret' });
    assert.deepEqual(bad, { action: 'threshold', ok: false, error: 'camera c1: threshold -3 is negative (raw scores are >= 0)' });
    const ro = setup('0.0.0.0', '');
    const r = await ro.hub.command('c1', 'threshold', { threshold: 1.5 });
    assert.equal(r.ok, false);
    assert.match(r.error ?? '', /read-only/);
    assert.deepEqual(ro.set, []);
    const open = setup('127.0.0.1', '');
    assert.equal((await open.hub.command('c1', 'threshold', { threshold: 0 })).ok, true);
    assert.match((await open.hub.command('c1', 'threshold', {})).error ?? '', /missing "threshold"/);
    assert.match((await open.hub.command('c2', 'threshold', { threshold: 1 })).error ?? '', /unknown camera "c2"/);
  });
});
