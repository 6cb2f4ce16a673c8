/**
 * Smoke test of the whole daemon process (dist/src/main.js) with the tiny contract model and the synthetic camera:
 * results, rejects, snapshots and statuses over MQTT (embedded aedes, and a real mosquitto for MQTT 5 properties),
 * /healthz and /metrics, SIGTERM -> offline status and exit 0, exit codes 2 and 3. The fault matrix lives in
 * test/integration (DAEMON-IT).
 */
import assert from 'node:assert/strict';
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import mqtt, { IPublishPacket } from 'mqtt';
import { REPO, TINY_MODEL, until } from './helpers';

const MAIN = join(REPO, 'dist', 'src', 'main.js');

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Tiny model with a low threshold, so that every synthetic frame is NG (exercises rejects and snapshots). */
function alwaysNgModel(): string {
  const dir = mkdtempSync(join(tmpdir(), 'etstpm-ng-model-'));
  cpSync(TINY_MODEL, dir, { recursive: true });
  const f = join(dir, 'model.json');
  const m = JSON.parse(readFileSync(f, 'utf8')) as Record<string, any>;
  m.threshold.raw = 0.05;
  m.normalization.threshold = 0.05;
  writeFileSync(f, JSON.stringify(m));
  return dir;
}

interface Run {
  proc: ChildProcess;
  stderr: string[];
  exited: Promise<number | null>;
}

function startDaemon(args: string[], env: NodeJS.ProcessEnv = {}): Run {
  const proc = spawn(process.execPath, [MAIN, ...args], { env: { ...process.env, ...env, NOTIFY_SOCKET: '' }, stdio: ['ignore', 'ignore', 'pipe'] });
  const stderr: string[] = [];
  proc.stderr!.on('data', (d: Buffer) => stderr.push(d.toString()));
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  return { proc, stderr, exited };
}

function collect(client: mqtt.MqttClient): IPublishPacket[] {
  const got: IPublishPacket[] = [];
  client.on('message', (_t, _p, packet) => got.push(packet));
  return got;
}

async function checkRun(run: Run, client: mqtt.MqttClient, httpPort: number, mqtt5: boolean): Promise<void> {
  const got = collect(client);
  await client.subscribeAsync('etstpm/#', { qos: 1 });
  const of = (suffix: string) => got.filter((p) => p.topic.endsWith(suffix));
  await until(() => of('/result').length >= 5 && of('/reject').length >= 2 && of('/snapshot').length >= 1, 20000, 'results, rejects and a snapshot');

  const r = JSON.parse(of('/result')[0].payload.toString()) as Record<string, any>;
  assert.equal(r.camera, 'sim-1');
  assert.equal(r.verdict, 'ng');
  assert.ok(r.score >= 0.5 && r.score <= 1);
  assert.equal(typeof r.rawScore, 'number');
  assert.ok(Number.isInteger(r.seq) && r.seq >= 1);
  assert.ok(Math.abs(r.capturedAt - Date.now()) < 30000);
  assert.ok(r.latencyMs >= 0);
  assert.deepEqual(r.model, { name: 'tiny-contract-test', version: JSON.parse(readFileSync(join(TINY_MODEL, 'model.json'), 'utf8')).version });
  assert.equal(of('/result')[0].qos, 0);

  const rej = of('/reject')[0];
  assert.equal(rej.qos, 1);
  const rj = JSON.parse(rej.payload.toString()) as Record<string, any>;
  assert.equal(rj.deadline - rj.capturedAt, 500);

  const snap = of('/snapshot')[0];
  assert.equal(snap.payload[0], 0xff, 'snapshot is not a JPEG');
  assert.equal(snap.payload[1], 0xd8);
  assert.ok(snap.payload.length <= 262144);
  if (mqtt5) {
    assert.equal(snap.properties?.contentType, 'image/jpeg');
    const up = snap.properties?.userProperties as Record<string, string>;
    assert.equal(up.camera, 'sim-1');
    assert.equal(up.verdict, 'ng');
    assert.ok(up.model && up.modelVersion, 'snapshot names the model that scored it');
    assert.ok(Number(up.seq) >= 1 && Number(up.score) >= 0.5);
    assert.ok((rej.properties?.messageExpiryInterval ?? 0) >= 1);
  }

  const statuses = of('sim-1/status').map((p) => JSON.parse(p.payload.toString()) as Record<string, any>);
  assert.ok(statuses.some((s) => s.state === 'streaming' && s.provider === 'cpu'));
  assert.ok(got.some((p) => p.topic === 'etstpm/status' && p.payload.toString() === 'online'));

  const health = await fetch(`http://127.0.0.1:${httpPort}/healthz`);
  assert.equal(health.status, 200, await health.clone().text());
  const metrics = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  assert.match(metrics, /etstpm_frames_processed_total\{camera="sim-1"\} [1-9]/);
  assert.match(metrics, /etstpm_inference_seconds_count\{batch="1",model="[^"]+",version="[^"]+"\} [1-9]/);

  const t0 = Date.now();
  run.proc.kill('SIGTERM');
  const code = await run.exited;
  assert.equal(code, 0, run.stderr.join(''));
  assert.ok(Date.now() - t0 < 5000, `took ${Date.now() - t0} ms to stop`);
  if (!mqtt5) return; // the embedded broker stops with the daemon; its clients see a disconnect only
  await until(() => got.some((p) => p.topic === 'etstpm/status' && p.payload.toString() === 'offline'), 3000, 'offline status');
  const last = of('sim-1/status').at(-1) as IPublishPacket;
  assert.equal((JSON.parse(last.payload.toString()) as { state: string }).state, 'stopped');
}

/** The broker comes up with the daemon (or beside it): retry connecting for up to 15 s. */
async function connectWhenUp(port: number, protocolVersion: 4 | 5): Promise<mqtt.MqttClient> {
  const t0 = Date.now();
  for (;;) {
    try {
      return await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { protocolVersion, reconnectPeriod: 0 });
    } catch (err) {
      if (Date.now() - t0 > 15000) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

describe('daemon process (smoke)', () => {
  it('embedded broker (MQTT 3.1.1): publishes the frame path and stops on SIGTERM', async () => {
    const [mqttPort, httpPort] = [await freePort(), await freePort()];
    const run = startDaemon(['--model-dir', alwaysNgModel(), '--http-port', String(httpPort), '--cameras', '[{"id":"sim-1","url":"synthetic://?fps=10&size=64"}]'], {
      ETSTPM_MQTT_EMBEDDED_PORT: String(mqttPort),
      ETSTPM_LOG_LEVEL: 'warn',
    });
    let client: mqtt.MqttClient | null = null;
    try {
      client = await connectWhenUp(mqttPort, 4);
      await checkRun(run, client, httpPort, false);
    } finally {
      client?.end(true);
      run.proc.kill('SIGKILL');
    }
  });

  const mosquitto = spawnSync('mosquitto', ['-h'], { stdio: 'ignore' }).error ? null : 'mosquitto';
  it('external mosquitto (MQTT 5): snapshot/reject properties, retained offline + stopped status', { skip: mosquitto ? false : 'mosquitto not installed' }, async () => {
    const [mqttPort, httpPort] = [await freePort(), await freePort()];
    const conf = join(mkdtempSync(join(tmpdir(), 'etstpm-mosq-')), 'mosquitto.conf');
    writeFileSync(conf, `listener ${mqttPort} 127.0.0.1\nallow_anonymous true\npersistence false\n`);
    const broker = spawn('mosquitto', ['-c', conf], { stdio: 'ignore' });
    let client: mqtt.MqttClient | null = null;
    const run = startDaemon(
      ['--model-dir', alwaysNgModel(), '--http-port', String(httpPort), '--mqtt-url', `mqtt://127.0.0.1:${mqttPort}`, '--cameras', '[{"id":"sim-1","url":"synthetic://?fps=10&size=64"}]'],
      { ETSTPM_LOG_LEVEL: 'warn' },
    );
    try {
      client = await connectWhenUp(mqttPort, 5);
      await checkRun(run, client, httpPort, true);
    } finally {
      client?.end(true);
      run.proc.kill('SIGKILL');
      broker.kill();
    }
  });

  it('SIGHUP reloads the camera list from the config file; a bad list is rejected and the cameras kept', async () => {
    const [mqttPort] = [await freePort()];
    const file = join(mkdtempSync(join(tmpdir(), 'etstpm-hup-')), 'config.json');
    const conf = (cameras: unknown) =>
      writeFileSync(file, JSON.stringify({ cameras, model: { dir: TINY_MODEL, providers: ['cpu'] }, mqtt: { embeddedPort: mqttPort }, http: { port: 0 } }));
    conf([{ id: 'a', url: 'synthetic://?fps=10&size=64' }]);
    const run = startDaemon(['--config', file], { ETSTPM_LOG_LEVEL: 'warn' });
    let client: mqtt.MqttClient | null = null;
    try {
      client = await connectWhenUp(mqttPort, 4);
      const got = collect(client);
      await client.subscribeAsync('etstpm/+/result');
      await until(() => got.some((p) => p.topic === 'etstpm/a/result'), 15000, 'results of camera a');
      conf([{ id: 'a', url: 'synthetic://?fps=10&size=64' }, { id: 'b', url: 'synthetic://?fps=10&size=64&seed=2' }]);
      run.proc.kill('SIGHUP');
      await until(() => got.some((p) => p.topic === 'etstpm/b/result'), 15000, 'results of the added camera b');
      conf([{ id: 'bad id', url: '' }]);
      run.proc.kill('SIGHUP');
      await until(() => run.stderr.join('').includes('new camera list rejected'), 5000, 'rejection logged');
      const before = got.length;
      await until(() => got.slice(before).some((p) => p.topic === 'etstpm/b/result') && got.slice(before).some((p) => p.topic === 'etstpm/a/result'), 10000, 'both cameras still running');
      assert.match(run.stderr.join(''), /config: cameras\[0\]\.id/);
      run.proc.kill('SIGTERM');
      assert.equal(await run.exited, 0);
    } finally {
      client?.end(true);
      run.proc.kill('SIGKILL');
    }
  });

  it('exit code 2 with one line per configuration problem, 3 for an unusable model', async () => {
    const bad = startDaemon(['--http-port', 'x', '--model-providers', 'gpu']);
    assert.equal(await bad.exited, 2);
    const lines = bad.stderr.join('').trim().split('\n');
    assert.deepEqual(lines.map((l) => l.split(':').slice(0, 2).join(':')).sort(), ['config: http.port', 'config: model.providers']);
    const noModel = startDaemon(['--model-dir', '/nonexistent-model', '--http-port', '0']);
    assert.equal(await noModel.exited, 3);
    assert.match(noModel.stderr.join(''), /model: \/nonexistent-model\/model\.json: cannot read model manifest/);
  });
});
