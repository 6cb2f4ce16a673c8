// Checks the integration-test fixtures themselves (no daemon involved), so a daemon test failure is never a
// fixture failure in disguise: the RTSP camera streams over TCP and UDP, bit-exactly in raw mode, and comes back on
// the same port; mosquitto works plain and with TLS + password (and rejects bad credentials); the notify listener
// receives datagrams; the test model honours the model-format contract in onnxruntime-node.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect } from 'mqtt';
import { missing, SHARED, tmpDir } from './helpers/env';
import { Mosquitto } from './helpers/mosquitto';
import { MqttCollector } from './helpers/mqtt-collector';
import { makeTestModel } from './helpers/model';
import { NotifyListener } from './helpers/notify';
import { RtspServer } from './helpers/rtsp';
import { makePasswordFile, makePki } from './helpers/tls';
import { sleep } from './helpers/wait';

const tmp = tmpDir();
after(() => tmp.remove());

function grabFrames(url: string, transport: 'tcp' | 'udp', n: number, size: string): Buffer {
  const [w, h] = size.split('x').map(Number);
  const r = spawnSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-rtsp_transport', transport, '-i', url,
    '-frames:v', String(n), '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-'], { timeout: 30000, maxBuffer: 64 << 20 });
  assert.equal(r.status, 0, `ffmpeg could not read ${url} over ${transport}: ${r.stderr}`);
  assert.equal(r.stdout.length, n * w * h * 3, 'frame bytes');
  return r.stdout;
}

describe('RTSP camera fixture (gst-rtsp-server)', { skip: missing('rtsp-server', 'ffmpeg', 'shared') }, () => {
  const grid = join(SHARED, 'data', 'mvtec_grid_subset', 'grid', 'test', 'good');
  test('raw RGB over TCP and UDP is bit-exact, and the server restarts on the same port', async () => {
    const cam = await new RtspServer({ images: [join(grid, '000.png')], fps: 10, codec: 'raw' }).start();
    try {
      const ref = execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-i', join(grid, '000.png'),
        '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-'], { maxBuffer: 64 << 20 });
      const tcp = grabFrames(cam.url, 'tcp', 2, '320x320');
      assert.ok(tcp.subarray(0, ref.length).equals(ref), 'raw stream over TCP must equal the decoded image');
      const udp = grabFrames(cam.url, 'udp', 2, '320x320');
      assert.ok(udp.subarray(0, ref.length).equals(ref), 'raw stream over UDP must equal the decoded image');
      const port = cam.port;
      await cam.kill();
      await cam.start();
      assert.equal(cam.port, port);
      grabFrames(cam.url, 'tcp', 1, '320x320');
    } finally {
      await cam.stop();
    }
  });

  test('H.264 stream decodes close to the source (lossy)', async () => {
    const cam = await new RtspServer({ images: [grid], fps: 10, codec: 'h264', size: '256x256' }).start();
    try {
      grabFrames(cam.url, 'tcp', 3, '256x256');
    } finally {
      await cam.stop();
    }
  });

  test('H.265 stream (x265, GOP 5, 1000 kbps): an hevc stream that decodes at the served size', async () => {
    const cam = await new RtspServer({ images: [grid], fps: 10, codec: 'h265', gop: 5, kbps: 1000, size: '256x256' }).start();
    try {
      grabFrames(cam.url, 'tcp', 3, '256x256');
      const probe = spawnSync('ffprobe', ['-v', 'error', '-rtsp_transport', 'tcp', '-select_streams', 'v:0', '-show_entries', 'stream=codec_name',
        '-of', 'csv=p=0', cam.url], { timeout: 30000, encoding: 'utf8' });
      assert.equal(probe.stdout.trim(), 'hevc', `ffprobe: ${probe.stderr}`);
    } finally {
      await cam.stop();
    }
  });
});

describe('mosquitto fixture', { skip: missing('mosquitto', 'tls') }, () => {
  test('plain broker: publish/subscribe, and stop/start on the same port', async () => {
    const broker = await new Mosquitto({ dir: tmp.dir }).start();
    const sub = await new MqttCollector({ url: broker.url, topics: ['fx/#'] }).start();
    try {
      const pub = connect(broker.url, { protocolVersion: 5, reconnectPeriod: 100 });
      await new Promise((r) => pub.once('connect', r));
      pub.publish('fx/a', 'one');
      await sub.waitFor('fx/a', (m) => m.payload.toString() === 'one', 3000);
      const port = broker.port;
      await broker.kill();
      await broker.start();
      assert.equal(broker.port, port);
      await sleep(300);
      const since = Date.now();
      // both clients reconnect by themselves; the collector resubscribes on connect
      pub.publish('fx/a', 'two');
      await sub.waitFor('fx/a', (m) => m.payload.toString() === 'two', 8000, 0).catch(async () => {
        pub.publish('fx/a', 'two');
        return sub.waitFor('fx/a', (m) => m.payload.toString() === 'two', 5000, since);
      });
      pub.end(true);
    } finally {
      await sub.stop();
      await broker.stop();
    }
  });

  test('TLS + username/password: accepts the right credentials, rejects wrong ones', async () => {
    const pki = makePki(tmp.dir);
    const pw = makePasswordFile(join(tmp.dir, 'passwd'), { edge: 's3cret-pw' });
    const broker = await new Mosquitto({ dir: tmp.dir, tls: pki, passwordFile: pw }).start();
    try {
      const good = await new MqttCollector({ url: broker.url, topics: ['fx/#'], username: 'edge', password: 's3cret-pw',
        ca: pki.ca }).start();
      await good.stop();
      const bad = connect(broker.url, { protocolVersion: 5, username: 'edge', password: 'wrong', ca: readFileSync(pki.ca),
        reconnectPeriod: 0 });
      const err = await new Promise<Error>((res) => bad.once('error', res));
      assert.match(String(err.message), /not authorized|bad user name or password|Bad User/i);
      bad.end(true);
      const untrusted = connect(broker.url, { protocolVersion: 5, username: 'edge', password: 's3cret-pw',
        reconnectPeriod: 0 });
      const terr = await new Promise<Error>((res) => untrusted.once('error', res));
      assert.match(String(terr.message), /self[- ]signed|certificate/i);
      untrusted.end(true);
    } finally {
      await broker.stop();
    }
  });
});

describe('NOTIFY_SOCKET listener fixture', () => {
  test('receives sd_notify datagrams on a path socket', async () => {
    const l = await new NotifyListener(join(tmp.dir, 'notify.sock')).start();
    try {
      execFileSync('python3', ['-c', 'import socket,sys; s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); '
        + 's.sendto(b"READY=1\\nSTATUS=hello world", sys.argv[1])', l.socketPath]);
      await l.proc.waitLine(/READY=1/, 3000);
      assert.deepEqual(l.assignments().map((a) => `${a.key}=${a.value}`), ['READY=1', 'STATUS=hello world']);
    } finally {
      await l.stop();
    }
  });
});

describe('test model fixture', { skip: missing('venv') }, () => {
  let dir = '';
  before(() => { dir = makeTestModel(join(tmp.dir, 'model'), { size: 32 }).dir; });
  test('honours the etstpm-model/1 I/O contract in onnxruntime-node', async () => {
    const ort = await import('onnxruntime-node');
    const s = await ort.InferenceSession.create(join(dir, 'model.onnx'));
    assert.deepEqual(s.inputNames, ['frames']);
    assert.deepEqual([...s.outputNames].sort(), ['anomaly_map', 'score']);
    const x = new ort.Tensor('uint8', new Uint8Array(2 * 32 * 32 * 3).map((_, i) => (i * 7) % 256), [2, 32, 32, 3]);
    const out = await s.run({ frames: x });
    assert.deepEqual(out.anomaly_map.dims, [2, 1, 32, 32]);
    assert.deepEqual(out.score.dims, [2]);
    const map = out.anomaly_map.data as Float32Array;
    assert.equal(out.score.data[0], Math.max(...map.subarray(0, 32 * 32)));
  });
});
