import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import mqtt from 'mqtt';
import { spawnSync } from 'node:child_process';
import { Mosquitto } from '../integration/helpers/mosquitto';
import { tmpDir } from '../integration/helpers/env';
import { startEmbeddedBroker } from '../../src/publish/broker';
import { describeDisconnect } from '../../src/publish/disconnect-reason';
import { Publisher } from '../../src/publish/mqtt';
import { captureLog, silentLog, until } from './helpers';

const base = { username: '', password: '', ca: '', cert: '', key: '', rejectUnauthorized: true, topicPrefix: 't', connectTimeoutMs: 2000 };

const hasMosquitto = !spawnSync('mosquitto', ['-h'], { stdio: 'ignore' }).error;

describe('Publisher', () => {
  it('session taken over by a client with the same id (real mosquitto, which closes without a reason): a warning names the likely cause', { skip: hasMosquitto ? false : 'mosquitto not installed' }, async () => {
    const tmp = tmpDir('etstpm-mosq-');
    const broker = await new Mosquitto({ dir: tmp.dir }).start();
    const cap = captureLog();
    const pub = new Publisher({ ...base, url: broker.url, clientId: 'same-id', protocolVersion: 5 }, cap.log);
    let thief: mqtt.MqttClient | null = null;
    try {
      await pub.waitConnected();
      thief = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: 'same-id', reconnectPeriod: 0 });
      await until(() => cap.messages().some((m) => m.startsWith('MQTT connection closed by the broker')), 10000, 'the close explained');
      const msg = cap.messages().find((m) => m.startsWith('MQTT connection closed by the broker')) as string;
      assert.match(msg, /after \d+\.\d s without a reason: if this repeats after every reconnect, another client is probably using the same client id "same-id"/);
    } finally {
      await thief?.endAsync(true);
      await pub.close([], 500);
      await broker.stop();
      tmp.remove();
    }
  });

  it('an MQTT 5 DISCONNECT from the broker (reason 142 + reason string) is logged with its reason', async () => {
    // A minimal MQTT 5 broker: CONNACK, then DISCONNECT "session taken over" with a reason string, then close.
    const net = await import('node:net');
    const sockets: import('node:net').Socket[] = [];
    let first = true;
    const server = net.createServer((sock) => {
      sockets.push(sock);
      sock.once('data', () => {
        sock.write(Buffer.from([0x20, 0x03, 0x00, 0x00, 0x00])); // CONNACK v5: accepted, no properties
        if (!first) return;
        first = false;
        const why = Buffer.from('kicked by test');
        const props = Buffer.concat([Buffer.from([0x1f, 0x00, why.length]), why]);
        setTimeout(() => sock.end(Buffer.concat([Buffer.from([0xe0, 2 + props.length, 142, props.length]), props])), 100);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as import('node:net').AddressInfo).port;
    const cap = captureLog();
    const pub = new Publisher({ ...base, url: `mqtt://127.0.0.1:${port}`, clientId: 'v5-test', protocolVersion: 5 }, cap.log);
    try {
      await until(() => cap.lines.some((l) => l.reasonCode === 142), 10000, 'the DISCONNECT reason logged');
      const line = cap.lines.find((l) => l.reasonCode === 142) as Record<string, unknown>;
      assert.equal(line.msg, 'MQTT broker closed the session: session taken over (reason code 142): kicked by test; another client connected with the same client id "v5-test" (mqtt.clientId must be unique per daemon)');
      assert.equal(line.level, 40, 'a warning');
      assert.ok(!cap.messages().some((m) => m.startsWith('MQTT connection closed by the broker')), 'explained once, not twice');
    } finally {
      await pub.close([], 300);
      for (const s of sockets) s.destroy();
      server.close();
    }
  });

  it('close() while the connection is still being made ends the socket at once (the embedded broker then closes too)', async () => {
    const broker = await startEmbeddedBroker('127.0.0.1', 0, silentLog());
    // connectTimeoutMs 60 s: a socket left to the connect timeout would keep the broker's close waiting a minute.
    const pub = new Publisher({ ...base, url: broker.url, clientId: 'early-close', protocolVersion: 4, connectTimeoutMs: 60000 }, silentLog());
    const t0 = Date.now();
    await pub.close([], 1500);
    assert.equal(pub.client.connected, false);
    assert.equal(pub.client.stream?.destroyed ?? true, true, 'the socket of the pending CONNECT is gone');
    await broker.close();
    process.stderr.write(`# publisher + embedded broker closed ${Date.now() - t0} ms after start-up\n`);
  });

  it('describeDisconnect: names the reason code, adds the broker\'s reason string', () => {
    assert.equal(describeDisconnect({ reasonCode: 139, properties: { reasonString: 'bye' } }, 'x'), 'server shutting down (reason code 139): bye');
    assert.equal(describeDisconnect({ reasonCode: 250 }, 'x'), 'unknown reason (reason code 250)');
    assert.equal(describeDisconnect({}, 'x'), 'normal disconnection (reason code 0)');
  });

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
