// systemd integration against a real unix datagram socket (test/fixtures/notify_listener.py standing in for
// systemd): READY=1 only once the model is warm and the broker connected, WATCHDOG=1 every WATCHDOG_USEC/2 while
// frames are processed, STATUS= summaries; a stalled pipeline (the RTSP server frozen with SIGSTOP, so the TCP
// connection stays open but no frame arrives) must stop the pings, so systemd would restart the service, and
// /healthz must turn 503. SIGCONT brings frames, pings and 200 back.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { freePort, missing, tmpDir } from './helpers/env';
import { Harness, ResultMsg } from './helpers/harness';
import { makeTestModel } from './helpers/model';
import { NotifyListener } from './helpers/notify';
import { sleep, waitFor } from './helpers/wait';

const skip = missing('daemon', 'venv', 'mosquitto', 'ffmpeg', 'rtsp-server', 'shared');
const WATCHDOG_USEC = 1_000_000; // pings expected every 0.5 s
const STALL_MS = 2000;           // ingest.stallTimeoutMs in the test config

describe('systemd notify + watchdog against a real NOTIFY_SOCKET', { skip }, () => {
  const models = tmpDir('etstpm-it-models-');
  after(() => models.remove());

  test('READY after broker connect, WATCHDOG while processing, pings stop on a stalled pipeline and resume', async () => {
    const h = new Harness();
    const listener = await new NotifyListener(join(h.dir, 'notify.sock')).start();
    try {
      h.model = makeTestModel(join(models.dir, 'm'), { size: 64 });
      await h.startBroker();
      const cam = await h.camera({ fps: 10 });
      const cfg = await h.config([{ id: 'cam1', url: cam.url }], { ingest: { stallTimeoutMs: STALL_MS } }, true);
      const httpPort = (cfg.http as { port: number }).port;
      const d = h.daemon(cfg, { env: { NOTIFY_SOCKET: listener.socketPath, WATCHDOG_USEC: String(WATCHDOG_USEC) } });
      const ready = await waitFor('READY=1', () => listener.times('READY', '1')[0], 30000);
      const online = h.mqtt.on(h.topic('status')).find((m) => m.payload.toString() === 'online');
      assert.ok(online, 'READY=1 must come after the broker connection (online published)');
      assert.ok(online.t <= ready + 200, `online at ${online.t}, READY at ${ready}`);
      await waitFor('results', () => h.mqtt.on(h.topic('cam1', 'result')).length >= 5, 30000);
      await sleep(3000);
      const t1 = Date.now();
      const pings = listener.times('WATCHDOG', '1', t1 - 3000);
      assert.ok(pings.length >= 3, `WATCHDOG=1 pings while processing: ${pings.length} in 3 s`);
      const gaps = pings.slice(1).map((t, i) => t - pings[i]);
      assert.ok(Math.max(...gaps) < WATCHDOG_USEC / 1000, `ping gaps ${gaps.join(',')} ms must stay below WATCHDOG_USEC`);
      assert.ok(listener.times('STATUS').length > 0, 'STATUS= summary sent');
      assert.equal((await fetch(`http://127.0.0.1:${httpPort}/healthz`)).status, 200);

      // freeze the camera: connection open, no frames
      cam.proc!.signal('SIGSTOP');
      const frozenAt = Date.now();
      const quietFrom = frozenAt + STALL_MS + WATCHDOG_USEC / 1000 + 500;
      await sleep(quietFrom - Date.now() + 3000);
      const late = listener.times('WATCHDOG', '1', quietFrom);
      assert.deepEqual(late, [], `no WATCHDOG=1 after the pipeline stalled (stall at ${frozenAt}, pings at ${late.join(',')})`);
      const health = await fetch(`http://127.0.0.1:${httpPort}/healthz`);
      assert.equal(health.status, 503, `healthz while stalled: ${await health.text()}`);
      assert.ok(d.running, 'the daemon itself keeps running (systemd decides to restart it)');
      const st = await h.mqtt.waitJson<{ state: string }>(h.topic('cam1', 'status'), (s) => s.state !== 'streaming', 5000,
        frozenAt, 'stall reported');
      assert.ok(['stalled', 'connecting', 'failed'].includes(st.state), st.state);

      cam.proc!.signal('SIGCONT');
      const contAt = Date.now();
      // the daemon may have dropped the stalled connection; it reconnects (backoff max 1 s here)
      await waitFor('results again', () => h.mqtt.json<ResultMsg>(h.topic('cam1', 'result'), contAt).length >= 3, 20000);
      await waitFor('WATCHDOG=1 again', () => listener.times('WATCHDOG', '1', contAt).length >= 2, 10000);
      await waitFor('/healthz 200 again', async () => (await fetch(`http://127.0.0.1:${httpPort}/healthz`)).status === 200, 10000);
    } finally {
      await listener.stop();
      await h.close();
    }
  });

  test('STOPPING=1 on SIGTERM; no WATCHDOG pings when systemd asked for none (no WATCHDOG_USEC)', async () => {
    const h = new Harness();
    const listener = await new NotifyListener(join(h.dir, 'notify2.sock')).start();
    try {
      h.model = makeTestModel(join(models.dir, 'm2'), { size: 64 });
      await h.startBroker();
      const cam = await h.camera();
      const d = h.daemon(await h.config([{ id: 'cam1', url: cam.url }]), { env: { NOTIFY_SOCKET: listener.socketPath } });
      await waitFor('READY=1', () => listener.times('READY', '1')[0], 30000);
      await waitFor('results', () => h.mqtt.on(h.topic('cam1', 'result')).length >= 3, 30000);
      d.proc.signal('SIGTERM');
      const exit = await d.proc.waitExit(5000);
      assert.equal(exit.code, 0);
      await waitFor('STOPPING=1', () => listener.times('STOPPING', '1')[0], 2000);
      assert.equal(listener.times('WATCHDOG').length, 0, 'no WATCHDOG pings without WATCHDOG_USEC');
    } finally {
      await listener.stop();
      await h.close();
    }
  });

  // docs/daemon.md ("systemd"): NOTIFY_SOCKET is a unix datagram socket, also abstract ("@..."). systemd itself
  // hands out a path socket
  // (/run/systemd/notify), but containers and other supervisors may pass an abstract one.
  test('abstract NOTIFY_SOCKET (@name) receives READY=1', async () => {
    const h = new Harness();
    const listener = await new NotifyListener(`@etstpm-it-${process.pid}-${await freePort()}`).start();
    try {
      h.model = makeTestModel(join(models.dir, 'm3'), { size: 64 });
      await h.startBroker();
      const cam = await h.camera();
      const d = h.daemon(await h.config([{ id: 'cam1', url: cam.url }]), { env: { NOTIFY_SOCKET: listener.socketPath } });
      await waitFor('READY=1 on the abstract socket', () => listener.times('READY', '1')[0], 30000)
        .catch((e) => { throw new Error(`${String(e)}\ndaemon output:\n${d.proc.tail(15)}`); });
    } finally {
      await listener.stop();
      await h.close();
    }
  });
});
