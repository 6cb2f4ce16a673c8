/**
 * The daemon's health and readiness with its parts given from outside (DaemonDeps): the real model and pipeline,
 * an output and a camera the test drives, so each state is reached through the daemon's own code.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/load';
import type { CameraConfig, DaemonConfig } from '../../src/config/types';
import { Daemon } from '../../src/daemon';
import { FailedStateHold } from '../../src/sources/status-hold';
import { freePort } from '../integration/helpers/env';
import type { ResultSink } from '../../src/pipeline';
import type { ResultMessage } from '../../src/pipeline/records';
import { TestCamera, TestOutput } from './daemon-parts';
import { silentLog, TINY_MODEL, until } from './helpers';

function config(cameras = '[{"id":"a","url":"synthetic://"}]'): DaemonConfig {
  const r = loadConfig({
    argv: ['--http-port', '0', '--model-dir', TINY_MODEL, '--model-providers', 'cpu', '--cameras', cameras],
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

  it('degraded (still ok, 200): a failed camera beside a working one, a PLC link not up; the reasons name them', async () => {
    const { out, cams, deps } = parts();
    const c = config('[{"id":"a","url":"synthetic://"},{"id":"b","url":"synthetic://"}]');
    // A PLC address nothing listens on: the Modbus link never comes up.
    c.modbus = { ...c.modbus, reconnectMinMs: 100, reconnectMaxMs: 200,
      outputs: [{ camera: 'a', host: '127.0.0.1', port: await freePort(), unitId: 1, type: 'coil', address: 0, pulseMs: 50, gapMs: 50 }] };
    const d = new Daemon(c, silentLog(), deps);
    try {
      await d.start();
      out.setConnected(true);
      await until(() => d.ready, 5000, 'ready');
      cams[0].push(127);
      await until(() => out.results.length === 1, 5000, 'a frame of camera a scored');
      await until(() => d.health().status === 'degraded', 5000, 'the PLC link reported down');
      let h = d.health();
      assert.equal(h.ok, true, 'degraded is not a 503');
      assert.match(String(h.reason), /^PLC link (down|connecting): 127\.0\.0\.1:\d+.*rejects of a are dropped/);
      // Camera b fails: named too, and its reconnect attempt is still reported failed (status debounce).
      const b = cams[1];
      const setState = (state: 'failed' | 'connecting' | 'streaming', error?: string) => {
        b.state = state;
        b.error = error;
        b.since = Date.now();
        b.emit('state', state, error);
      };
      const before = out.statuses.length;
      setState('failed', 'decoder exited: connection refused');
      setState('connecting');
      setState('failed', 'decoder exited: connection refused');
      setState('connecting');
      h = d.health();
      assert.equal(h.status, 'degraded');
      assert.deepEqual((h.degraded as string[])[0], 'camera failed: b (decoder exited: connection refused)');
      assert.equal((h.cameras as Record<string, string>).b, 'failed');
      const published = out.statuses.slice(before).filter((s) => s.camera === 'b').map((s) => s.state);
      assert.deepEqual(published, ['failed'], 'one status for the failure, none for the reconnect attempts');
      setState('streaming');
      assert.deepEqual(out.statuses.slice(before).filter((s) => s.camera === 'b').map((s) => s.state), ['failed', 'streaming']);
      assert.ok(!(d.health().degraded as string[]).some((r) => r.includes('camera')));
    } finally {
      await d.stop();
    }
  });
});

describe('failed-state hold (status debounce)', () => {
  it('a failed camera reconnecting stays failed until it streams or one attempt outlasts the hold', () => {
    const hold = new FailedStateHold(1000);
    const t0 = 1_000_000;
    assert.equal(hold.view('x', { state: 'connecting', error: undefined, since: t0 }, t0).state, 'connecting', 'before any failure');
    assert.deepEqual(hold.view('x', { state: 'failed', error: 'refused', since: t0 + 10 }, t0 + 10), { state: 'failed', error: 'refused', since: t0 + 10 });
    assert.deepEqual(hold.view('x', { state: 'connecting', error: undefined, since: t0 + 500 }, t0 + 600), { state: 'failed', error: 'refused', since: t0 + 10 });
    // A later failure with another reason: still failed since the first one, with the new reason.
    assert.deepEqual(hold.view('x', { state: 'failed', error: 'timeout', since: t0 + 900 }, t0 + 900), { state: 'failed', error: 'timeout', since: t0 + 10 });
    // An attempt connecting for longer than the hold is shown as such.
    assert.equal(hold.view('x', { state: 'connecting', error: undefined, since: t0 + 1000 }, t0 + 2100).state, 'connecting');
    assert.equal(hold.view('x', { state: 'streaming', error: undefined, since: t0 + 2200 }, t0 + 2200).state, 'streaming');
    assert.equal(hold.view('x', { state: 'connecting', error: undefined, since: t0 + 2300 }, t0 + 2300).state, 'connecting', 'streamed since: no hold');
    assert.equal(new FailedStateHold(0).view('y', { state: 'failed', error: 'e', since: 1 }, 1).state, 'failed');
    const off = new FailedStateHold(0);
    off.view('y', { state: 'failed', error: 'e', since: 1 }, 1);
    assert.equal(off.view('y', { state: 'connecting', error: undefined, since: 2 }, 2).state, 'connecting', 'hold 0: every state');
    assert.equal(hold.isPublished('x', { state: 'failed', error: 'a' }), false);
    hold.notePublished('x', { state: 'failed', error: 'a' });
    assert.equal(hold.isPublished('x', { state: 'failed', error: 'a' }), true);
    assert.equal(hold.isPublished('x', { state: 'failed', error: 'b' }), false);
    assert.equal(hold.isPublished('x', { state: 'connecting', error: undefined }), false);
  });
});
