// Configuration of the Sparkplug B edge node and the Modbus reject outputs (src/plc/config.ts,
// src/modbus/config.ts) through the real loader: defaults, normalisation, and one clear message per problem.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/load';

function file(obj: unknown): string {
  const f = join(mkdtempSync(join(tmpdir(), 'etstpm-plc-cfg-')), 'config.json');
  writeFileSync(f, JSON.stringify(obj));
  return f;
}

const CAMS = [{ id: 'line1', url: 'synthetic://' }, { id: 'line2', url: 'synthetic://' }];

function errorsOf(obj: unknown): string[] {
  const r = loadConfig({ argv: ['--config', file(obj)], env: {} });
  assert.equal(r.kind, 'error', 'expected configuration errors');
  return r.kind === 'error' ? r.errors : [];
}

describe('PLC / SCADA output configuration', () => {
  it('defaults: both outputs off', () => {
    const r = loadConfig({ argv: [], env: {} });
    assert.equal(r.kind, 'ok');
    if (r.kind !== 'ok') return;
    assert.equal(r.config.sparkplug.enabled, false);
    assert.equal(r.config.sparkplug.groupId, 'etstpm');
    assert.equal(r.config.sparkplug.primaryHostId, '');
    assert.equal(r.config.sparkplug.dataPeriodMs, 0);
    assert.deepEqual(r.config.modbus.outputs, []);
    assert.deepEqual(r.config.modbus.heartbeats, []);
  });

  it('outputs get their defaults filled in (port 502, unit 1, pulse 200 ms, gap 50 ms)', () => {
    const r = loadConfig({
      argv: ['--config', file({ cameras: CAMS, modbus: { outputs: [{ camera: 'line1', host: '10.0.0.5', type: 'coil', address: 16 }, { camera: 'line2', host: 'plc-2.local', port: 1502, unitId: 3, type: 'register', address: 100 }] } })],
      env: { ETSTPM_SPARKPLUG_ENABLED: 'true', ETSTPM_SPARKPLUG_GROUP_ID: 'Plant A', ETSTPM_SPARKPLUG_EDGE_NODE_ID: 'press-7' },
    });
    assert.equal(r.kind, 'ok', JSON.stringify(r));
    if (r.kind !== 'ok') return;
    assert.deepEqual(r.config.modbus.outputs, [
      { camera: 'line1', host: '10.0.0.5', port: 502, unitId: 1, type: 'coil', address: 16, pulseMs: 200, gapMs: 50 },
      { camera: 'line2', host: 'plc-2.local', port: 1502, unitId: 3, type: 'register', address: 100, pulseMs: 200, gapMs: 50 },
    ]);
    assert.equal(r.config.sparkplug.enabled, true);
    assert.equal(r.config.sparkplug.groupId, 'Plant A');
    assert.equal(r.config.sparkplug.edgeNodeId, 'press-7');
  });

  it('one message per problem, naming the output and key', () => {
    const e = errorsOf({
      cameras: CAMS,
      sparkplug: { enabled: 'yes', groupId: 'a/b', edgeNodeId: '', primaryHostId: 'scada#1', dataPeriodMs: -5 },
      modbus: {
        reconnectMinMs: 5000,
        reconnectMaxMs: 100,
        outputs: [
          { camera: 'lineX', host: 'plc', type: 'coil', address: 1 },
          { camera: 'line1', host: 'bad host!', port: 70000, unitId: 300, type: 'relay', address: -1, pulseMs: 0, colour: 'red' },
          { camera: 'line2', host: 'plc', type: 'register', address: 4, pulseMs: 100 },
          'nope',
        ],
      },
    });
    const keys = e.map((l) => l.split(': ')[0]);
    for (const k of [
      'sparkplug.enabled', 'sparkplug.groupId', 'sparkplug.edgeNodeId', 'sparkplug.primaryHostId', 'sparkplug.dataPeriodMs',
      'modbus.reconnectMaxMs',
      'modbus.outputs[0].camera', 'modbus.outputs[1].host', 'modbus.outputs[1].port', 'modbus.outputs[1].unitId',
      'modbus.outputs[1].type', 'modbus.outputs[1].address', 'modbus.outputs[1].pulseMs', 'modbus.outputs[1].colour',
      'modbus.outputs[2].pulseMs', 'modbus.outputs[3]',
    ]) assert.ok(keys.includes(k), `no message for ${k} in:\n${e.join('\n')}`);
    assert.ok(e.some((l) => l.includes('no camera with id "lineX" (cameras: line1, line2)')), e.join('\n'));
  });

  it('two outputs for one camera, or two cameras on the same coil, are refused', () => {
    const e = errorsOf({
      cameras: CAMS,
      modbus: { outputs: [
        { camera: 'line1', host: 'plc', type: 'coil', address: 1 },
        { camera: 'line1', host: 'plc', type: 'coil', address: 2 },
        { camera: 'line2', host: 'plc', type: 'coil', address: 1 },
      ] },
    });
    assert.ok(e.some((l) => l.startsWith('modbus.outputs[1].camera: camera "line1" already has a Modbus output')), e.join('\n'));
    assert.ok(e.some((l) => l.startsWith('modbus.outputs[2].address: the same coil 1 on plc:502 unit 1 is already used by modbus.outputs[0]')), e.join('\n'));
  });

  it('heartbeats get their defaults (port 502, unit 1, period 1 s, staleMs from ingest, every camera)', () => {
    const r = loadConfig({
      argv: ['--config', file({ cameras: CAMS, modbus: { heartbeats: [
        { host: '10.0.0.5', type: 'coil', address: 30 },
        { host: '10.0.0.5', port: 1502, unitId: 2, type: 'register', address: 31, periodMs: 250, staleMs: 8000, cameras: ['line2'] },
      ] } })],
      env: {},
    });
    assert.equal(r.kind, 'ok', JSON.stringify(r));
    if (r.kind !== 'ok') return;
    assert.deepEqual(r.config.modbus.heartbeats, [
      { host: '10.0.0.5', port: 502, unitId: 1, type: 'coil', address: 30, periodMs: 1000, staleMs: null, cameras: null },
      { host: '10.0.0.5', port: 1502, unitId: 2, type: 'register', address: 31, periodMs: 250, staleMs: 8000, cameras: ['line2'] },
    ]);
  });

  it('heartbeat problems: one message each, naming the heartbeat and key; no sharing a reject output\'s coil', () => {
    const e = errorsOf({
      cameras: CAMS,
      modbus: {
        outputs: [{ camera: 'line1', host: 'plc', type: 'coil', address: 1 }],
        heartbeats: [
          { host: 'plc', type: 'coil', address: 1 },
          { host: 'bad host!', type: 'toggle', address: 70000, periodMs: 10, staleMs: 0, cameras: ['lineX'], every: 1 },
          { host: 'plc', type: 'register', address: 2, cameras: [] },
          7,
        ],
      },
    });
    const keys = e.map((l) => l.split(': ')[0]);
    for (const k of [
      'modbus.heartbeats[0].address', 'modbus.heartbeats[1].host', 'modbus.heartbeats[1].type', 'modbus.heartbeats[1].address',
      'modbus.heartbeats[1].periodMs', 'modbus.heartbeats[1].staleMs', 'modbus.heartbeats[1].cameras', 'modbus.heartbeats[1].every',
      'modbus.heartbeats[2].cameras', 'modbus.heartbeats[3]',
    ]) assert.ok(keys.includes(k), `no message for ${k} in:\n${e.join('\n')}`);
    assert.ok(e.some((l) => l.startsWith('modbus.heartbeats[0].address: the same coil 1 on plc:502 unit 1 is already used by modbus.outputs[0]')), e.join('\n'));
    assert.ok(e.some((l) => l.includes('no camera with id "lineX"')), e.join('\n'));
  });

  it('modbus.outputs from the environment must be JSON', () => {
    const r = loadConfig({ argv: [], env: { ETSTPM_MODBUS_OUTPUTS: '[{camera:' } });
    assert.equal(r.kind, 'error');
    if (r.kind === 'error') assert.ok(r.errors.some((l) => l.startsWith('modbus.outputs: not valid JSON')), r.errors.join('\n'));
    const h = loadConfig({ argv: [], env: { ETSTPM_MODBUS_HEARTBEATS: '{' } });
    assert.equal(h.kind, 'error');
    if (h.kind === 'error') assert.ok(h.errors.some((l) => l.startsWith('modbus.heartbeats: not valid JSON')), h.errors.join('\n'));
  });

  it('the wiring example in config/ loads', () => {
    const f = join(__dirname, '..', '..', '..', 'config', 'plc-wiring.json');
    const cfg = JSON.parse(readFileSync(f, 'utf8')) as Record<string, unknown>;
    const r = loadConfig({ argv: ['--config', f], env: {} });
    assert.equal(r.kind, 'ok', r.kind === 'error' ? r.errors.join('\n') : '');
    if (r.kind !== 'ok') return;
    assert.equal(r.config.sparkplug.enabled, true);
    assert.equal(r.config.modbus.outputs.length, (cfg.modbus as { outputs: unknown[] }).outputs.length);
    assert.equal(r.config.modbus.heartbeats.length, (cfg.modbus as { heartbeats: unknown[] }).heartbeats.length);
  });
});
