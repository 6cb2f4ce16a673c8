import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Metrics } from '../../src/health/metrics';
import { InferenceEngine } from '../../src/infer/session';
import { FanOutSink, Output, Pipeline, PipelineOptions, ResultSink } from '../../src/pipeline';
import { RejectMessage, ResultMessage } from '../../src/pipeline/records';
import { captureLog, FakeCamera, silentLog, TINY_MODEL, until } from './helpers';

/** Records what the pipeline publishes (the MQTT side is covered by the smoke and integration tests). */
class RecordingPublisher implements ResultSink {
  connected = true;
  results: ResultMessage[] = [];
  rejects: RejectMessage[] = [];
  snapshots: Array<{ camera: string; bytes: number; user: Record<string, string> }> = [];
  publishResult(r: ResultMessage): boolean {
    if (!this.connected) return false;
    this.results.push(r);
    return true;
  }
  publishReject(r: RejectMessage): boolean {
    if (!this.connected) return false;
    this.rejects.push(r);
    return true;
  }
  publishSnapshot(camera: string, data: Buffer, _ct: string, user: Record<string, string>): boolean {
    if (!this.connected) return false;
    this.snapshots.push({ camera, bytes: data.length, user });
    return true;
  }
}

async function setup(snapshot: PipelineOptions['snapshot'] = { onNg: true, everyN: 0, format: 'jpeg', maxBytes: 262144 }) {
  const engine = await InferenceEngine.load({ modelDir: TINY_MODEL, providers: ['cpu'], maxBatch: 4, tensorrt: { cacheDir: '/tmp/x', fp16: false } }, silentLog());
  const pub = new RecordingPublisher();
  const metrics = new Metrics();
  const p = new Pipeline(pub, metrics, { rejectDeadlineMs: 500, snapshot }, silentLog());
  return { engine, pub, metrics, p };
}

describe('pipeline', () => {
  it('frames ready from several cameras run as one batch; each gets its own result', async () => {
    const { engine, pub, metrics, p } = await setup();
    const cams = ['a', 'b', 'c'].map((id) => new FakeCamera(id));
    for (const c of cams) p.addCamera(c, engine);
    cams[0].push(127); // ok: raw 0.002
    cams[1].push(0); // ng: raw 0.5 >= threshold 0.45
    cams[2].push(127);
    p.start();
    await until(() => pub.results.length === 3, 5000, 'three results');
    const batches = (await metrics.inferenceSeconds.get()).values.filter((v) => v.metricName === 'etstpm_inference_seconds_count');
    assert.deepEqual(batches.map((b) => [b.labels.batch, b.value]), [['3', 1]]);
    const byCam = Object.fromEntries(pub.results.map((r) => [r.camera, r]));
    assert.equal(byCam.a.verdict, 'ok');
    assert.equal(byCam.b.verdict, 'ng');
    // raw max of mean |x/255 - 0.5| for black = 0.5; normalized (0.5 - 0.45) / (0.5 - 0) + 0.5 = 0.6
    assert.ok(Math.abs(byCam.b.score - 0.6) < 1e-6);
    assert.ok(Math.abs(byCam.b.rawScore - 0.5) < 1e-6);
    assert.deepEqual(byCam.b.model, { name: engine.manifest.name, version: engine.manifest.version });
    // NG -> reject with deadline and a snapshot with its properties.
    assert.equal(pub.rejects.length, 1);
    assert.equal(pub.rejects[0].camera, 'b');
    assert.equal(pub.rejects[0].deadline - pub.rejects[0].capturedAt, 500);
    await until(() => pub.snapshots.length === 1, 5000, 'snapshot of the NG frame');
    assert.deepEqual(pub.snapshots[0].user, { camera: 'b', seq: '1', score: '0.6000', verdict: 'ng', model: engine.manifest.name, modelVersion: engine.manifest.version });
    assert.deepEqual(pub.rejects[0].model, { name: engine.manifest.name, version: engine.manifest.version });
    await p.stop();
    await engine.close();
  });

  it('a newer frame replaces an unprocessed one: dropped is counted, the newest seq is processed', async () => {
    const { engine, pub, p } = await setup();
    const cam = new FakeCamera('a');
    p.addCamera(cam, engine);
    cam.push(1);
    cam.push(2);
    cam.push(3);
    p.start();
    await until(() => pub.results.length === 1, 5000, 'one result');
    assert.equal(pub.results[0].seq, 3);
    assert.deepEqual(p.counter('a'), { captured: 3, processed: 1, dropped: 2, ng: 1 });
    await p.stop();
    await engine.close();
  });

  it('snapshot.everyN also snapshots OK frames; nothing is published while offline', async () => {
    const { engine, pub, metrics, p } = await setup({ onNg: false, everyN: 2, format: 'png', maxBytes: 262144 });
    const cam = new FakeCamera('a');
    p.addCamera(cam, engine);
    p.start();
    for (let i = 0; i < 4; i++) {
      cam.push(127);
      await until(() => pub.results.length === i + 1, 5000, `result ${i + 1}`);
    }
    await until(() => pub.snapshots.length === 2, 5000, 'snapshots of frames 2 and 4');
    assert.deepEqual(pub.snapshots.map((s) => s.user.seq), ['2', '4']);
    pub.connected = false;
    cam.push(0);
    await until(() => p.counter('a').processed === 5, 5000, 'fifth frame processed');
    assert.equal(pub.results.length, 4);
    const unsent = (await metrics.mqttUnsent.get()).values.find((v) => v.labels.kind === 'result');
    assert.equal(unsent?.value, 1);
    await p.stop();
    await engine.close();
  });
});

describe('FanOutSink', () => {
  const result: ResultMessage = {
    camera: 'a', seq: 1, capturedAt: 1, score: 0.7, rawScore: 0.5, verdict: 'ng', latencyMs: 3, model: { name: 'm', version: 'v' },
  };
  const reject: RejectMessage = { camera: 'a', seq: 1, capturedAt: 1, deadline: 501, score: 0.7, model: { name: 'm', version: 'v' } };

  it('every output gets every message; the primary answers for the pipeline; a throwing output is logged and skipped', () => {
    const primary = new RecordingPublisher();
    const other = new RecordingPublisher();
    const broken: ResultSink = {
      connected: true,
      publishResult: () => {
        throw new Error('link down');
      },
      publishReject: () => false,
      publishSnapshot: () => false,
    };
    const log = captureLog('warn');
    const fan = new FanOutSink(primary, [broken, other], log.log);
    assert.equal(fan.publishResult(result), true);
    assert.equal(fan.publishReject(reject), true);
    assert.equal(fan.publishSnapshot('a', Buffer.alloc(3), 'image/jpeg', { camera: 'a' }), true);
    for (const s of [primary, other]) {
      assert.deepEqual(s.results, [result]);
      assert.deepEqual(s.rejects, [reject]);
      assert.equal(s.snapshots.length, 1);
    }
    assert.deepEqual(log.lines.map((l) => [l.msg, l.kind, l.err]), [['output failed; message skipped for it', 'result', 'link down']]);

    // Primary offline: its "not sent" is what the pipeline counts; the others still get the message, and a
    // snapshot is still worth rendering while one output is connected.
    primary.connected = false;
    assert.equal(fan.connected, true);
    assert.equal(fan.publishResult(result), false);
    assert.equal(other.results.length, 2);
    other.connected = false;
    assert.equal(fan.publishSnapshot('a', Buffer.alloc(3), 'image/jpeg', {}), false);
    assert.equal(other.snapshots.length, 1, 'a disconnected output is not handed snapshots');
    assert.equal(new FanOutSink(primary, [other], log.log).connected, false);
  });
});

describe('FanOutSink hooks', () => {
  it('scored frames only built when an output takes them; health, status extras and camera events from every output in order', () => {
    const primary = new RecordingPublisher();
    const log = captureLog('warn');
    assert.equal(new FanOutSink(primary, [], log.log).scoredFrame, undefined, 'nobody takes scored frames: none is built');
    const seen: string[] = [];
    const a: Output = {
      name: 'a',
      scoredFrame: (f) => seen.push(`a:${f.seq}`),
      health: () => ({ fields: { a: 1 }, degraded: ['a down'] }),
      cameraStatusExtras: () => ({ error: 'from a' }),
      cameraRemoved: (c) => seen.push(`a-removed:${c}`),
    };
    const broken: Output = {
      name: 'broken',
      health: () => {
        throw new Error('boom');
      },
      cameraRemoved: () => {
        throw new Error('boom');
      },
    };
    const b: Output = { name: 'b', health: () => ({ fields: { b: 2 }, degraded: ['b down'] }), cameraRemoved: (c) => seen.push(`b-removed:${c}`) };
    const fan = new FanOutSink(primary, [a, broken, b], log.log);
    assert.equal(fan.outputs[0], primary, 'the primary is added first when not listed');
    fan.scoredFrame?.({ camera: 'c', seq: 3, capturedAt: 0, score: 0, rawScore: 0, verdict: 'ok', frame: Buffer.alloc(0), map: new Float32Array(0),
      model: { name: 'm', version: 'v', width: 1, height: 1, normalization: { threshold: 1, min: 0, max: 2 } } });
    assert.deepEqual(fan.health(), { fields: { a: 1, b: 2 }, degraded: ['a down', 'b down'] });
    assert.deepEqual(fan.cameraStatusExtras('c'), { error: 'from a' });
    fan.cameraRemoved('c');
    assert.deepEqual(seen, ['a:3', 'a-removed:c', 'b-removed:c']);
    assert.deepEqual(log.lines.map((l) => [l.sink, l.kind]), [['broken', 'health'], ['broken', 'camera removed']]);
  });
});
