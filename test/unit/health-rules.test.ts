/** The health rules and summary line (src/health/rules.ts) on hand-made snapshots: no daemon, no processes. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CameraHealthView, degradedReasons, HealthSnapshot, healthOf, processingHealth, summaryLine } from '../../src/health/rules';

const NOW = 1_000_000;
const camera = (id: string, over: Partial<CameraHealthView> = {}): CameraHealthView => ({
  id, state: 'streaming', error: undefined, reported: { state: over.state ?? 'streaming', error: over.error }, hasModel: true,
  modelError: undefined, lastFrameAt: NOW - 10, lastNewFrameAt: NOW - 10, ...over,
});
const snap = (over: Partial<HealthSnapshot> = {}): HealthSnapshot => ({
  now: NOW, ready: true, modelsLoaded: true, mqttConnected: true, processing: true, lastProcessedAt: NOW - 100, stallTimeoutMs: 5000,
  cameras: [camera('a')], outputsDegraded: [], fields: { uptimeS: 7 }, ...over,
});

describe('health rules', () => {
  it('ok: ready, connected, frames scored; the fields are in the body', () => {
    assert.deepEqual(healthOf(snap()), { ok: true, uptimeS: 7, status: 'ok', degraded: [] });
  });

  it('unhealthy, first rule that fails: not ready (model / broker), MQTT down, frozen, nothing processed, no model', () => {
    assert.equal(healthOf(snap({ ready: false, modelsLoaded: false })).reason, 'not ready: loading model');
    assert.equal(healthOf(snap({ ready: false })).reason, 'not ready: waiting for the MQTT broker');
    assert.equal(healthOf(snap({ mqttConnected: false })).reason, 'MQTT broker not connected');
    const frozen = healthOf(snap({ cameras: [camera('a', { state: 'frozen', error: 'image unchanged for 3 s' }), camera('b')] }));
    assert.equal(frozen.reason, 'camera frozen: a (image unchanged for 3 s)');
    assert.equal(frozen.status, 'unhealthy');
    const idle = healthOf(snap({ lastProcessedAt: 0, cameras: [camera('a', { state: 'connecting', lastFrameAt: 0, lastNewFrameAt: 0 })] }));
    assert.equal(idle.reason, 'no frame processed yet; cameras: a=connecting');
    const noModel = healthOf(snap({ cameras: [camera('a'), camera('b', { hasModel: false, modelError: 'camera b: model.json: file not found' })] }));
    assert.equal(noModel.reason, 'camera without a model: b (camera b: model.json: file not found)');
  });

  it('processing: a camera repeating an image already scored keeps it alive; a stale pipeline does not', () => {
    const stale = { lastProcessedAt: NOW - 9000 };
    assert.equal(processingHealth(snap({ ...stale, cameras: [camera('a', { lastFrameAt: NOW - 10, lastNewFrameAt: NOW - 9500 })] })).ok, true);
    const p = processingHealth(snap({ ...stale, cameras: [camera('a', { lastFrameAt: NOW - 9500, lastNewFrameAt: NOW - 9500 })] }));
    assert.deepEqual(p, { ok: false, reason: 'no frame processed for 9000 ms; cameras: a=streaming' });
    assert.deepEqual(processingHealth(snap({ processing: false })), { ok: false, reason: 'starting' });
  });

  it('degraded (200): a failed or stalled camera with a model, then what the outputs report, in that order', () => {
    const s = snap({
      cameras: [camera('a'), camera('b', { reported: { state: 'failed', error: 'connection refused' } }), camera('c', { hasModel: false, reported: { state: 'failed', error: 'x' } })],
      outputsDegraded: ['PLC link down: 127.0.0.1:502, rejects of a are dropped (3 so far)'],
    });
    assert.deepEqual(degradedReasons(s), ['camera failed: b (connection refused)', 'PLC link down: 127.0.0.1:502, rejects of a are dropped (3 so far)']);
    const h = healthOf({ ...s, cameras: s.cameras.slice(0, 2) });
    assert.equal(h.status, 'degraded');
    assert.equal(h.ok, true);
    assert.equal(h.reason, 'camera failed: b (connection refused); PLC link down: 127.0.0.1:502, rejects of a are dropped (3 so far)');
  });

  it('summary line: totals, one p50 for one model, one per model for several', () => {
    const base = { cameras: [{ id: 'a', state: 'streaming' as const, fps: 2.04 }, { id: 'b', state: 'stalled' as const, fps: 0 }],
      counters: [{ captured: 10, processed: 8, dropped: 2, ng: 1 }, { captured: 5, processed: 5, dropped: 0, ng: 0 }], p50All: 41.26, mqttConnected: true };
    assert.equal(summaryLine({ ...base, models: [{ name: 'm', provider: 'cpu', p50: 41.26 }] }),
      'cameras 1/2 streaming, 2.0 fps | captured 15 processed 13 dropped 2 ng 1 | infer p50 41.3 ms on cpu | mqtt up | a=streaming b=stalled');
    assert.equal(summaryLine({ ...base, mqttConnected: false, models: [{ name: 'm', provider: 'cpu', p50: 41.26 }, { name: 'n', provider: 'cuda', p50: 3 }] }),
      'cameras 1/2 streaming, 2.0 fps | captured 15 processed 13 dropped 2 ng 1 | infer p50 m 41.3 ms, n 3.0 ms on cpu/cuda | mqtt down | a=streaming b=stalled');
  });
});
