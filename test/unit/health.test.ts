import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/load';
import { Daemon } from '../../src/daemon';
import { Pipeline } from '../../src/pipeline';
import { Publisher } from '../../src/publish/mqtt';
import { silentLog } from './helpers';

function daemon(): Daemon {
  const r = loadConfig({ argv: ['--http-port', '0'], env: {} });
  assert.equal(r.kind, 'ok');
  return new Daemon((r as { config: import('../../src/config/types').DaemonConfig }).config, silentLog(), { env: {} });
}

describe('health', () => {
  it('503 with a reason until ready; watchdog health follows frames really processed', () => {
    const d = daemon();
    const h0 = d.health();
    assert.equal(h0.ok, false);
    assert.equal(h0.reason, 'not ready: loading model');
    assert.deepEqual(d.processingHealth(), { ok: false, reason: 'starting' });

    // Ready, connected, but nothing processed yet, then processed just now, then long ago.
    const pipeline = { lastProcessedAt: 0, counters: new Map(), inferenceP50: () => 0 } as unknown as Pipeline;
    d.pipeline = pipeline;
    d.publisher = { connected: true } as unknown as Publisher;
    d.ready = true;
    assert.match(String(d.health().reason), /^no frame processed yet; cameras: none$/);
    pipeline.lastProcessedAt = Date.now();
    assert.equal(d.health().ok, true);
    assert.equal(d.processingHealth().ok, true);
    pipeline.lastProcessedAt = Date.now() - 6000; // stallTimeoutMs defaults to 5000
    assert.match(String(d.processingHealth().reason), /^no frame processed for 6\d\d\d ms/);
    assert.equal(d.health().ok, false);

    // Broker down: the daemon is unhealthy for operators, but the watchdog keeps pinging (a restart cannot help).
    pipeline.lastProcessedAt = Date.now();
    d.publisher = { connected: false } as unknown as Publisher;
    assert.equal(d.health().ok, false);
    assert.equal(d.health().reason, 'MQTT broker not connected');
    assert.equal(d.processingHealth().ok, true);
  });
});
