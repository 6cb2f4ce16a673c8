import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig, redactConfig } from '../../src/config/load';
import { buildSchema, DaemonSchema, schemaLeaves, valueFlags } from '../../src/config/schema';
import type { DaemonConfig } from '../../src/config/types';
import { redactUrl } from '../../src/redact';

function errors(argv: string[], env: NodeJS.ProcessEnv = {}): string[] {
  const r = loadConfig({ argv, env });
  assert.equal(r.kind, 'error', `expected errors, got ${r.kind}`);
  return r.kind === 'error' ? r.errors : [];
}

function tmpFile(content: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'etstpm-cfg-'));
  const f = join(dir, 'config.json');
  writeFileSync(f, content);
  return f;
}

/** Dotted keys of a configuration type: arrays and scalars are keys, nested objects are walked. */
type ConfigKeys<T> = {
  [K in keyof T & string]: T[K] extends readonly unknown[] | string | number | boolean | null ? K : `${K}.${ConfigKeys<T[K]>}`;
}[keyof T & string];
/** Dotted keys of the convict schema: entries with a `doc` are keys, other objects are walked. */
type SchemaKeys<S> = { [K in keyof S & string]: S[K] extends { doc: string } ? K : `${K}.${SchemaKeys<S[K]>}` }[keyof S & string];
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;

/** The same walk at run time, over a loaded configuration. */
function configKeys(v: Record<string, unknown>, prefix = ''): string[] {
  return Object.entries(v).flatMap(([k, x]) =>
    x !== null && typeof x === 'object' && !Array.isArray(x) ? configKeys(x as Record<string, unknown>, `${prefix}${k}.`) : [prefix + k],
  );
}

describe('config keys are declared once', () => {
  it('the schema has exactly the keys of the DaemonConfig type, and loadConfig returns exactly those', () => {
    // Compile-time half: a key added to or missing from either side makes this test fail to build.
    const same: Same<SchemaKeys<DaemonSchema>, ConfigKeys<DaemonConfig>> = true;
    assert.equal(same, true);
    const schemaKeys = schemaLeaves(buildSchema()).map((l) => l.key);
    const r = loadConfig({ argv: [], env: {} });
    assert.equal(r.kind, 'ok');
    if (r.kind !== 'ok') return;
    assert.deepEqual(configKeys(r.config as unknown as Record<string, unknown>).sort(), [...schemaKeys].sort());
    assert.ok(schemaKeys.length >= 30, `only ${schemaKeys.length} keys found: the walk is broken`);
  });

  it('the command-line flags are the schema\'s arg entries, and each one works', () => {
    const flags = valueFlags(buildSchema());
    assert.deepEqual(flags, ['cameras', 'model-dir', 'model-providers', 'mqtt-url', 'mqtt-topic-prefix', 'http-port', 'log-level']);
    const r = loadConfig({ argv: ['--model-dir', '/m', '--mqtt-topic-prefix', 'p', '--log-level', 'warn'], env: {} });
    assert.equal(r.kind, 'ok');
    if (r.kind !== 'ok') return;
    assert.deepEqual([r.config.model.dir, r.config.mqtt.topicPrefix, r.config.log.level], ['/m', 'p', 'warn']);
    assert.match(errors(['--model-tensorrt-fp16', 'false'])[0], /^command line: .*--model-tensorrt-fp16/);
  });
});

describe('config', () => {
  it('no configuration at all gives the demo defaults', () => {
    const r = loadConfig({ argv: [], env: {} });
    assert.equal(r.kind, 'ok');
    if (r.kind !== 'ok') return;
    assert.deepEqual(r.config.cameras, [{ id: 'sim-1', url: 'synthetic://', fps: 0, roi: null, transport: 'tcp', decoder: 'ffmpeg', model: null }]);
    assert.equal(r.config.mqtt.url, '');
    assert.equal(r.config.model.dir, 'models/demo');
    assert.deepEqual(r.config.model.providers, ['tensorrt', 'cuda', 'cpu']);
    assert.equal(r.config.http.port, 9464);
  });

  it('precedence: flag > env > file > default', () => {
    const f = tmpFile(JSON.stringify({ mqtt: { topicPrefix: 'file' }, http: { port: 1001 }, log: { level: 'warn' } }));
    const r = loadConfig({ argv: ['--config', f, '--http-port', '1003'], env: { ETSTPM_HTTP_PORT: '1002', ETSTPM_MQTT_TOPIC_PREFIX: 'env' } });
    assert.equal(r.kind, 'ok');
    if (r.kind !== 'ok') return;
    assert.equal(r.config.http.port, 1003);
    assert.equal(r.config.mqtt.topicPrefix, 'env');
    assert.equal(r.config.log.level, 'warn');
  });

  it('env: providers as a comma list, cameras as JSON', () => {
    const r = loadConfig({
      argv: [],
      env: { ETSTPM_MODEL_PROVIDERS: 'cuda, cpu', ETSTPM_CAMERAS: '[{"id":"c1","url":"rtsp://h/s","fps":5,"roi":{"x":1,"y":2,"width":30,"height":40}}]' },
    });
    assert.equal(r.kind, 'ok');
    if (r.kind !== 'ok') return;
    assert.deepEqual(r.config.model.providers, ['cuda', 'cpu']);
    assert.deepEqual(r.config.cameras[0], { id: 'c1', url: 'rtsp://h/s', fps: 5, roi: { x: 1, y: 2, width: 30, height: 40 }, transport: 'tcp', decoder: 'ffmpeg', model: null });
  });

  it('one message per problem, each naming the key', () => {
    const e = errors(['--http-port', '70000', '--model-providers', 'cpu,gpu', '--log-level', 'loud'], {
      ETSTPM_CAMERAS: '[{"id":"a/b","url":"","fps":-1,"decoder":"vaapi","extra":1},{"id":"ok","url":"rtsp://x/y"},{"id":"ok","url":"rtsp://x/z"}]',
    });
    const keys = e.map((l) => l.split(':')[0]);
    for (const k of ['http.port', 'model.providers', 'log.level', 'cameras[0].id', 'cameras[0].url', 'cameras[0].fps', 'cameras[0].decoder', 'cameras[0].extra', 'cameras[2].id']) {
      assert.ok(keys.includes(k), `no message for ${k} in:\n${e.join('\n')}`);
    }
    assert.ok(e.find((l) => l.startsWith('cameras[2].id'))?.includes('duplicate'));
    assert.ok(e.find((l) => l.startsWith('model.providers'))?.includes('"gpu"'));
  });

  it('file errors: unknown keys, wrong types, bad JSON, unreadable TLS files', () => {
    const f = tmpFile(JSON.stringify({ mqtt: { port: 1, ca: '/nonexistent/ca.pem' }, snapshot: { format: 'gif', everyN: 'x' } }));
    const e = errors(['--config', f]);
    assert.ok(e.some((l) => l.startsWith('mqtt.port: not a known key')), e.join('\n'));
    assert.ok(e.some((l) => l.startsWith('snapshot.format:')), e.join('\n'));
    assert.ok(e.some((l) => l.startsWith('snapshot.everyN:')), e.join('\n'));
    assert.ok(e.some((l) => l.startsWith('mqtt.ca: cannot read file "/nonexistent/ca.pem"')), e.join('\n'));
    const bad = tmpFile('{ "mqtt": ');
    const e2 = errors(['--config', bad]);
    assert.equal(e2.length, 1);
    assert.match(e2[0], /^--config: ".*config.json" is not valid JSON/);
    assert.match(errors(['--config', '/nonexistent.json'])[0], /^--config: cannot read "\/nonexistent.json" \(ENOENT\)/);
  });

  it('ingest.frozenTolerance: grey levels 0-255, default 8; fractions allowed; out of range or not a number named', () => {
    const ok = loadConfig({ argv: ['--config', tmpFile(JSON.stringify({ ingest: { frozenTolerance: 2.5 } }))], env: {} });
    assert.equal(ok.kind, 'ok');
    assert.equal((ok as { config: { ingest: { frozenTolerance: number } } }).config.ingest.frozenTolerance, 2.5);
    const def = loadConfig({ argv: [], env: {} });
    assert.equal((def as { config: { ingest: { frozenTolerance: number } } }).config.ingest.frozenTolerance, 8);
    for (const bad of [-1, 256, 'x']) {
      const e = errors(['--config', tmpFile(JSON.stringify({ ingest: { frozenTolerance: bad } }))]);
      assert.ok(e.some((l) => l.startsWith('ingest.frozenTolerance: must be a number of grey levels between 0 and 255')), `${bad}: ${e.join('\n')}`);
    }
  });

  it('unknown flags and unparsable env values are reported, not thrown', () => {
    assert.match(errors(['--bogus'])[0], /^command line: .*--bogus/);
    assert.match(errors([], { ETSTPM_CAMERAS: '{nope' })[0], /^cameras: not valid JSON/);
  });

  it('secrets never appear in messages or in the logged config', () => {
    const e = errors(['--mqtt-url', 'mqtt://user:s3cr3t-url@broker:1883', '--cameras', '[{"id":"a b","url":"rtsp://cam:s3cr3t-cam@10.0.0.1/x"}]'], {
      ETSTPM_MQTT_PASSWORD: 's3cr3t-pw',
    });
    const all = e.join('\n');
    for (const s of ['s3cr3t-url', 's3cr3t-cam', 's3cr3t-pw']) assert.ok(!all.includes(s), `${s} leaked into: ${all}`);
    const r = loadConfig({
      argv: ['--mqtt-url', 'mqtts://user:s3cr3t-url@broker:8883', '--cameras', '[{"id":"a","url":"rtsp://cam:s3cr3t-cam@10.0.0.1/x"}]'],
      env: { ETSTPM_MQTT_USERNAME: 'user', ETSTPM_MQTT_PASSWORD: 's3cr3t-pw' },
    });
    assert.equal(r.kind, 'ok');
    if (r.kind !== 'ok') return;
    const logged = JSON.stringify(redactConfig(r.config));
    for (const s of ['s3cr3t-url', 's3cr3t-cam', 's3cr3t-pw']) assert.ok(!logged.includes(s), `${s} leaked into: ${logged}`);
    assert.equal(redactUrl('rtsp://a:b@h:554/x'), 'rtsp://***@h:554/x');
    assert.equal(redactUrl('rtsp://h/x'), 'rtsp://h/x');
    // Decoder stderr and gst arguments carry the URL mid-line.
    assert.equal(redactUrl('[rtsp @ 0x1] location=rtsp://u:p@h/x: 401'), '[rtsp @ 0x1] location=rtsp://***@h/x: 401');
  });
});

describe('cameras[].model', () => {
  it('a camera names its own model folder; an empty or non-string one is an error naming the camera key', () => {
    const r = loadConfig({ argv: ['--cameras', '[{"id":"a","url":"synthetic://","model":"/models/a"},{"id":"b","url":"synthetic://"}]'], env: {} });
    assert.equal(r.kind, 'ok');
    if (r.kind !== 'ok') return;
    assert.deepEqual(r.config.cameras.map((c) => c.model), ['/models/a', null]);
    const e = loadConfig({ argv: ['--cameras', '[{"id":"a","url":"synthetic://","model":""},{"id":"b","url":"synthetic://","model":3}]'], env: {} });
    assert.equal(e.kind, 'error');
    if (e.kind !== 'error') return;
    assert.ok(e.errors.some((l) => l.startsWith('cameras[0].model: ')), e.errors.join('\n'));
    assert.ok(e.errors.some((l) => l.startsWith('cameras[1].model: ')), e.errors.join('\n'));
  });
});

describe('config/ examples', () => {
  for (const name of ['example.json', 'jetson-gst.json', 'images-folder.json', 'station-multi-model.json']) {
    it(`config/${name} is valid (TLS files aside, which exist only on a device)`, () => {
      const r = loadConfig({ argv: ['--config', join(__dirname, '..', '..', '..', 'config', name)], env: {} });
      const errs = r.kind === 'error' ? r.errors.filter((e) => !/^mqtt\.(ca|cert|key): cannot read file/.test(e)) : [];
      assert.deepEqual(errs, []);
    });
  }
});

describe('config: console.allowedHosts and status.failedHoldMs', () => {
  it('host names from the environment (comma-separated) or a file; a URL or path is refused naming the key', () => {
    const r = loadConfig({ argv: [], env: { ETSTPM_CONSOLE_ALLOWED_HOSTS: 'console.plant.example, 10.0.0.5:8080 ,[fd00::5]:9464' } });
    assert.equal(r.kind, 'ok');
    if (r.kind !== 'ok') return;
    assert.deepEqual(r.config.console.allowedHosts, ['console.plant.example', '10.0.0.5:8080', '[fd00::5]:9464']);
    assert.equal(r.config.status.failedHoldMs, 30000);
    const bad = errors([], { ETSTPM_CONSOLE_ALLOWED_HOSTS: 'http://console.plant.example/' });
    assert.ok(bad.some((e) => /console\.allowedHosts/.test(e) && /not a host name or host:port/.test(e)), bad.join('\n'));
    const f = tmpFile(JSON.stringify({ status: { failedHoldMs: -1 } }));
    assert.ok(errors(['--config', f]).some((e) => /status\.failedHoldMs/.test(e)));
  });
});
