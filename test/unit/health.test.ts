/**
 * The daemon's health and readiness with its parts given from outside (DaemonDeps): the real model and pipeline,
 * an output and a camera the test drives, so each state is reached through the daemon's own code.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/load';
import type { CameraConfig, DaemonConfig } from '../../src/config/types';
import { Daemon } from '../../src/daemon';
import type { ResultSink } from '../../src/pipeline';
import type { ResultMessage } from '../../src/publish/messages';
import { TestCamera, TestOutput } from './daemon-parts';
import { silentLog, TINY_MODEL, until } from './helpers';

function config(): DaemonConfig {
  const r = loadConfig({
    argv: ['--http-port', '0', '--model-dir', TINY_MODEL, '--model-providers', 'cpu', '--cameras', '[{"id":"a","url":"synthetic://"}]'],
    env: {},
  });
  assert.equal(r.kind, 'ok');
  return (r as { config: DaemonConfig }).config;
}

function parts() {
  const out = new TestOutput();
  const cams: TestCamera[] = [];
  const deps = {
    env: {},
    publisher: () => out,
    camera: (cfg: CameraConfig) => {
      const c = new TestCamera(cfg);
      cams.push(c);
      return c;
    },
  };
  return { out, cams, deps };
}

describe('health', () => {
  it('503 with a reason until ready; watchdog health follows frames really processed', async () => {
    const { out, cams, deps } = parts();
    const d = new Daemon(config(), silentLog(), deps);
    const h0 = d.health();
    assert.equal(h0.ok, false);
    assert.equal(h0.reason, 'not ready: loading model');
    assert.deepEqual(d.processingHealth(), { ok: false, reason: 'starting' });
    try {
      await d.start();
      assert.equal(d.health().reason, 'not ready: waiting for the MQTT broker');

      // Ready, connected, but nothing processed yet, then processed just now, then long ago.
      out.setConnected(true);
      await until(() => d.ready, 5000, 'ready');
      assert.equal(await d.metrics.mqttConnected.get().then((g) => g.values[0]?.value), 1);
      assert.match(String(d.health().reason), /^no frame processed yet; cameras: a=streaming$/);
      cams[0].push(127);
      await until(() => out.results.length === 1, 5000, 'the frame scored and published');
      assert.equal(d.health().ok, true);
      assert.equal(d.processingHealth().ok, true);
      const later = Date.now() + 6000; // stallTimeoutMs defaults to 5000
      assert.match(String(d.processingHealth(later).reason), /^no frame processed for 6\d\d\d ms; cameras: a=streaming$/);
      assert.equal(d.health(later).ok, false);

      // Broker down: the daemon is unhealthy for operators, but the watchdog keeps pinging (a restart cannot help).
      out.setConnected(false);
      assert.equal(await d.metrics.mqttConnected.get().then((g) => g.values[0]?.value), 0);
      assert.equal(d.health().ok, false);
      assert.equal(d.health().reason, 'MQTT broker not connected');
      assert.equal(d.processingHealth().ok, true);
    } finally {
      await d.stop();
    }
    assert.equal(out.closed, true);
  });

  it('a lone frozen camera: /healthz says "camera frozen" as with several cameras; the watchdog keeps pinging', async () => {
    const { out, cams, deps } = parts();
    const d = new Daemon(config(), silentLog(), deps);
    try {
      await d.start();
      out.setConnected(true);
      await until(() => d.ready, 5000, 'ready');
      const before = Date.now();
      cams[0].lastNewFrameAt = before;
      cams[0].push(10);
      await until(() => out.results.length === 1, 5000, 'the frame scored');
      // Later than the stall timeout: nothing processed since, the decoder still delivering repeats of that image.
      const later = Date.now() + 6000;
      cams[0].lastFrameAt = later - 200;
      cams[0].state = 'frozen';
      cams[0].error = 'image unchanged for 31.0 s (155 repeated frames)';
      cams[0].emit('state', 'frozen', cams[0].error);
      const h = d.health(later);
      assert.equal(h.ok, false);
      assert.equal(h.reason, 'camera frozen: a (image unchanged for 31.0 s (155 repeated frames))');
      assert.equal(d.processingHealth(later).ok, true, 'a frozen camera alone must not stop the watchdog pings');
      // Between decoder restarts (no frame from the new session yet) the wording stays the same.
      cams[0].lastFrameAt = 0;
      assert.equal(d.health(later).reason, h.reason);
    } finally {
      await d.stop();
    }
  });

  it('outputs given beside MQTT get every result and, if they take them, camera statuses', async () => {
    const { out, cams, deps } = parts();
    const extra = new TestOutput();
    extra.connected = true;
    const plain: ResultSink & { results: ResultMessage[] } = {
      connected: true,
      results: [],
      publishResult(r) {
        this.results.push(r);
        return true;
      },
      publishReject: () => true,
      publishSnapshot: () => true,
    };
    const d = new Daemon(config(), silentLog(), { ...deps, sinks: [extra, plain] });
    try {
      await d.start();
      out.setConnected(true);
      await until(() => d.ready, 5000, 'ready');
      cams[0].push(127);
      await until(() => out.results.length === 1 && extra.results.length === 1 && plain.results.length === 1, 5000, 'a result on each output');
      assert.deepEqual(extra.results[0], out.results[0]);
      assert.deepEqual(plain.results[0], out.results[0]);
      assert.ok(extra.statuses.some((s) => s.camera === 'a' && s.state === 'streaming'));
      await d.reloadCameras([]);
      assert.deepEqual(extra.forgotten, ['a']);
      assert.deepEqual(out.forgotten, ['a']);
    } finally {
      await d.stop();
    }
  });
});
