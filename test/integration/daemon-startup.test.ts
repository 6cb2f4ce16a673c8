// Start-up refusals (exit codes: docs/daemon.md; keys: docs/configuration.md): invalid configuration exits 2 with one
// `config: <key>: <why>` line per problem; a model that cannot be loaded (missing, sha256 mismatch, not an ONNX
// graph, wrong input contract) exits 3 with a message naming the file and the problem; an HTTP port already taken
// exits 1 before any MQTT connection. Real daemon process, real
// (test) ONNX model; no broker needed because the daemon must refuse before serving anything.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { AddressInfo, createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { freePort, missing } from './helpers/env';
import { Harness } from './helpers/harness';
import { corruptGraphCopy, makeTestModel, sha256MismatchCopy } from './helpers/model';

const EXIT_TIMEOUT_MS = 20000;

describe('daemon start-up refusals', { skip: missing('daemon', 'venv') }, () => {
  const h = new Harness();
  let unusedBroker = '';
  before(async () => {
    h.makeModel({ size: 32 });
    unusedBroker = `mqtt://127.0.0.1:${await freePort()}`;
  });
  after(() => h.close());

  const valid = (modelDir: string): Record<string, unknown> => ({
    cameras: [{ id: 'cam1', url: 'synthetic://?fps=5&seed=1' }],
    model: { dir: modelDir, providers: ['cpu'] },
    mqtt: { url: unusedBroker, topicPrefix: h.prefix },
    http: { port: 0 },
  });

  test('invalid configuration: exit 2, one line per problem naming the key', async () => {
    const cfg = valid(h.model.dir);
    cfg.snapshot = { format: 'gif' };
    cfg.http = { port: 'not-a-port' };
    cfg.log = { level: 'loud' };
    cfg.model = { dir: h.model.dir, providers: ['cpu', 'quantum'] };
    const d = h.daemon(cfg);
    const exit = await d.proc.waitExit(EXIT_TIMEOUT_MS);
    assert.equal(exit.code, 2, `exit code (output:\n${d.output()})`);
    const problems = d.proc.stderr.filter((l) => /^config: /.test(l));
    for (const key of ['snapshot.format', 'http.port', 'log.level', 'model.providers']) {
      assert.ok(problems.some((l) => l.startsWith(`config: ${key}: `) && l.length > `config: ${key}: `.length + 3),
        `expected a line "config: ${key}: <why>" on stderr; got:\n${d.proc.stderr.join('\n')}`);
    }
    assert.ok(problems.length >= 4, 'one line per problem');
  });

  test('invalid camera entry names the camera key', async () => {
    const cfg = valid(h.model.dir);
    cfg.cameras = [{ id: 'ok-cam', url: 'synthetic://' }, { id: 'no-url' }];
    const d = h.daemon(cfg);
    const exit = await d.proc.waitExit(EXIT_TIMEOUT_MS);
    assert.equal(exit.code, 2, `exit code (output:\n${d.output()})`);
    assert.ok(d.proc.stderr.some((l) => /^config: cameras.*url/.test(l)),
      `expected "config: cameras...url: <why>"; got:\n${d.proc.stderr.join('\n')}`);
  });

  test('unparseable config file: exit 2 naming the file', async () => {
    const d = h.daemon('{ "cameras": [ this is not json');
    const exit = await d.proc.waitExit(EXIT_TIMEOUT_MS);
    assert.equal(exit.code, 2, `exit code (output:\n${d.output()})`);
    assert.ok(d.output().includes(d.configFile), `message should name ${d.configFile}; got:\n${d.output()}`);
  });

  test('model folder missing: exit 3 naming it', async () => {
    const gone = join(h.dir, 'no-such-model');
    const d = h.daemon(valid(gone));
    const exit = await d.proc.waitExit(EXIT_TIMEOUT_MS);
    assert.equal(exit.code, 3, `exit code (output:\n${d.output()})`);
    assert.ok(d.output().includes(gone), `message should name ${gone}; got:\n${d.output()}`);
  });

  test('sha256 mismatch: exit 3 naming model.onnx and the mismatch', async () => {
    const dir = sha256MismatchCopy(h.model.dir, join(h.dir, 'mismatch'));
    const d = h.daemon(valid(dir));
    const exit = await d.proc.waitExit(EXIT_TIMEOUT_MS);
    assert.equal(exit.code, 3, `exit code (output:\n${d.output()})`);
    assert.match(d.output(), /model\.onnx/, 'names the file');
    assert.match(d.output(), /sha-?256/i, 'names the problem');
  });

  test('corrupt ONNX file (sha256 matches): exit 3 naming model.onnx', async () => {
    const dir = corruptGraphCopy(h.model.dir, join(h.dir, 'corrupt'));
    const d = h.daemon(valid(dir));
    const exit = await d.proc.waitExit(EXIT_TIMEOUT_MS);
    assert.equal(exit.code, 3, `exit code (output:\n${d.output()})`);
    assert.match(d.output(), /model\.onnx/, 'names the file');
  });

  test('wrong input contract (float32 frames): exit 3 naming the input', async () => {
    const { dir } = makeTestModel(join(h.dir, 'float-input'), { size: 32, inputDtype: 'float32' });
    const d = h.daemon(valid(dir));
    const exit = await d.proc.waitExit(EXIT_TIMEOUT_MS);
    assert.equal(exit.code, 3, `exit code (output:\n${d.output()})`);
    assert.match(d.output(), /frames/, 'names the input');
    assert.match(d.output(), /uint8|float/i, 'says what is wrong with it');
  });

  test('HTTP port already taken: exit 1 with a line naming the address and what to do, before any MQTT connection', async () => {
    const holder = createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', () => r()));
    const port = (holder.address() as AddressInfo).port;
    try {
      // Both an external broker nobody answers on and the embedded one (which used to keep the exit waiting ~10 s).
      for (const mqtt of [{ url: unusedBroker }, { url: '', embeddedPort: await freePort() }]) {
        const cfg = { ...valid(h.model.dir), mqtt: { ...mqtt, topicPrefix: h.prefix }, http: { host: '127.0.0.1', port } };
        const t0 = Date.now();
        const d = h.daemon(cfg);
        const exit = await d.proc.waitExit(EXIT_TIMEOUT_MS);
        assert.equal(exit.code, 1, `exit code (output:\n${d.output()})`);
        const line = d.proc.stderr.find((l) => l.startsWith('fatal: '));
        assert.equal(line, `fatal: http: cannot listen on 127.0.0.1:${port} (EADDRINUSE): another process already listens on this port; `
          + 'choose another http.port (--http-port, ETSTPM_HTTP_PORT) or 0 to serve no HTTP', d.output());
        // The port is checked before the broker is started or connected to.
        assert.ok(!/MQTT|embedded MQTT broker/.test(d.output()), `no MQTT before the HTTP port is bound:\n${d.output()}`);
        process.stderr.write(`# http port taken, mqtt ${mqtt.url || 'embedded'}: exit 1 after ${Date.now() - t0} ms (process start included)\n`);
      }
    } finally {
      holder.close();
    }
  });

  test('model.json not valid JSON: exit 3 naming model.json', async () => {
    const dir = sha256MismatchCopy(h.model.dir, join(h.dir, 'badjson'));
    writeFileSync(join(dir, 'model.json'), '{"format": "etstpm-model/1", ');
    const d = h.daemon(valid(dir));
    const exit = await d.proc.waitExit(EXIT_TIMEOUT_MS);
    assert.equal(exit.code, 3, `exit code (output:\n${d.output()})`);
    assert.match(d.output(), /model\.json/, 'names the file');
  });
});
