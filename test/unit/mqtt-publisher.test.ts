import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import mqtt from 'mqtt';
import { startEmbeddedBroker } from '../../src/publish/broker';
import { Publisher } from '../../src/publish/mqtt';
import { captureLog, silentLog, until } from './helpers';

const base = { username: '', password: '', ca: '', cert: '', key: '', rejectUnauthorized: true, topicPrefix: 't', connectTimeoutMs: 2000 };

describe('Publisher', () => {
  it('falls back to MQTT 3.1.1 when the broker refuses MQTT 5 (aedes), then publishes', async () => {
    const broker = await startEmbeddedBroker('127.0.0.1', 0, silentLog());
    const cap = captureLog();
    const pub = new Publisher({ ...base, url: broker.url, clientId: 'fallback-test', protocolVersion: 5 }, cap.log);
    const sub = await mqtt.connectAsync(broker.url, { protocolVersion: 4 });
    const got: string[] = [];
    sub.on('message', (topic, payload) => got.push(`${topic} ${payload.length}`));
    await sub.subscribeAsync('t/#');
    try {
      await pub.waitConnected();
      assert.equal(pub.mqtt5, false);
      assert.ok(cap.messages().includes('broker does not support MQTT 5: using MQTT 3.1.1 (no message properties)'));
      assert.equal(pub.publishSnapshot('c', Buffer.alloc(10), 'image/jpeg', { seq: '1' }), true);
      await until(() => got.includes('t/c/snapshot 10'), 3000, 'snapshot over 3.1.1');
    } finally {
      await pub.close([], 1000);
      await sub.endAsync();
      await broker.close();
    }
  });

  it('while disconnected: results, rejects and snapshots are refused and counted, never queued', async () => {
    const pub = new Publisher({ ...base, url: 'mqtt://127.0.0.1:9', clientId: 'offline-test' }, silentLog());
    try {
      const r = { camera: 'c', seq: 1, capturedAt: Date.now(), score: 0.9, rawScore: 1, verdict: 'ng' as const, latencyMs: 1, model: { name: 'm', version: 'v' } };
      assert.equal(pub.publishResult(r), false);
      assert.equal(pub.publishReject({ camera: 'c', seq: 1, capturedAt: r.capturedAt, deadline: r.capturedAt + 500, score: 0.9 }), false);
      assert.equal(pub.publishSnapshot('c', Buffer.alloc(1), 'image/jpeg', {}), false);
      assert.deepEqual(pub.counters, { results: 0, resultsUnsent: 1, rejects: 0, rejectsUnsent: 1, snapshots: 0, snapshotsUnsent: 1 });
      assert.equal(pub.client.queue.length, 0, 'mqtt.js must not hold queued messages');
    } finally {
      await pub.close([], 500);
    }
  });
});
