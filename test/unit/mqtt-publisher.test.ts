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

  it('a broker that does not read: results and snapshots stop at the socket backlog cap instead of growing memory', async () => {
    // A TCP server that completes the MQTT handshake and then never reads again.
    const net = await import('node:net');
    const sockets: import('node:net').Socket[] = [];
    const server = net.createServer((sock) => {
      sockets.push(sock);
      sock.once('data', () => {
        sock.write(Buffer.from([0x20, 0x02, 0x00, 0x00])); // CONNACK, accepted (MQTT 3.1.1)
        sock.pause();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as import('node:net').AddressInfo).port;
    const pub = new Publisher({ ...base, url: `mqtt://127.0.0.1:${port}`, clientId: 'slow-test', protocolVersion: 4 }, silentLog());
    try {
      await pub.waitConnected();
      const big = Buffer.alloc(200 * 1024);
      let sent = 0;
      for (let i = 0; i < 200; i++) if (pub.publishSnapshot('c', big, 'image/jpeg', {})) sent++;
      assert.ok(pub.counters.congested > 0, 'never reported congestion');
      assert.ok(sent * big.length < 40 * 1024 * 1024);
      const backlog = (pub.client.stream as unknown as { writableLength: number }).writableLength;
      assert.ok(backlog < 8 * 1024 * 1024, `socket backlog grew to ${backlog} bytes`);
    } finally {
      await pub.close([], 300);
      for (const s of sockets) s.destroy();
      server.close();
    }
  });

  it('while disconnected: results, rejects and snapshots are refused and counted, never queued', async () => {
    const pub = new Publisher({ ...base, url: 'mqtt://127.0.0.1:9', clientId: 'offline-test' }, silentLog());
    try {
      const r = { camera: 'c', seq: 1, capturedAt: Date.now(), score: 0.9, rawScore: 1, verdict: 'ng' as const, latencyMs: 1, model: { name: 'm', version: 'v' } };
      assert.equal(pub.publishResult(r), false);
      assert.equal(pub.publishReject({ camera: 'c', seq: 1, capturedAt: r.capturedAt, deadline: r.capturedAt + 500, score: 0.9, model: r.model }), false);
      assert.equal(pub.publishSnapshot('c', Buffer.alloc(1), 'image/jpeg', {}), false);
      assert.deepEqual(pub.counters, { results: 0, resultsUnsent: 1, congested: 0, rejects: 0, rejectsUnsent: 1, snapshots: 0, snapshotsUnsent: 1 });
      assert.equal(pub.client.queue.length, 0, 'mqtt.js must not hold queued messages');
    } finally {
      await pub.close([], 500);
    }
  });
});
