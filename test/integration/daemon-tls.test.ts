// MQTT security against a real mosquitto: TLS with a test CA (openssl at test time), username/password (password
// file made by mosquitto_passwd) and a client certificate. The daemon must publish through it, and the password
// must never appear in its output (logs).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { missing, tmpDir } from './helpers/env';
import { Harness, ResultMsg } from './helpers/harness';
import { makeTestModel } from './helpers/model';
import { readRetained } from './helpers/mqtt-collector';
import { makePasswordFile, makePki } from './helpers/tls';
import { waitFor } from './helpers/wait';

const skip = missing('daemon', 'venv', 'mosquitto', 'tls', 'ffmpeg', 'rtsp-server', 'shared');
const PASSWORD = 'Pa55-w0rd-never-logged-7f3a';

describe('daemon over TLS + username/password + client certificate (real mosquitto)', { skip }, () => {
  const models = tmpDir('etstpm-it-models-');
  after(() => models.remove());

  test('publishes results and retained status through the secured broker; password absent from logs', async () => {
    const h = new Harness();
    try {
      h.model = makeTestModel(join(models.dir, 'm'), { size: 64 });
      const pki = makePki(h.dir);
      const pw = makePasswordFile(join(h.dir, 'passwd'), { edge: PASSWORD, dashboard: 'dash-pw' });
      await h.startBroker({ tls: pki, passwordFile: pw, requireClientCert: true },
        { username: 'dashboard', password: 'dash-pw', ca: pki.ca, cert: pki.clientCert, key: pki.clientKey });
      const cam = await h.camera();
      const cfg = await h.config([{ id: 'cam1', url: cam.url }], {
        mqtt: { username: 'edge', password: PASSWORD, ca: pki.ca, cert: pki.clientCert, key: pki.clientKey },
        log: { level: 'debug' },
      });
      assert.match(h.broker.url, /^mqtts:/);
      const d = h.daemon(cfg);
      await waitFor('5 results over TLS', () => h.mqtt.json<ResultMsg>(h.topic('cam1', 'result')).length >= 5, 30000);
      const online = await readRetained({ url: h.broker.url, username: 'dashboard', password: 'dash-pw', ca: pki.ca,
        cert: pki.clientCert, key: pki.clientKey }, h.topic('status'));
      assert.equal(online?.payload.toString(), 'online');
      await d.stop();
      assert.ok(!d.output().includes(PASSWORD), 'the MQTT password must never be logged');
      assert.ok(d.proc.lines.length > 0, 'daemon logged something (so the check above looked at real output)');
    } finally {
      await h.close();
    }
  });

  test('password given by environment variable is not logged either, and a wrong one does not crash the daemon', async () => {
    const h = new Harness();
    try {
      h.model = makeTestModel(join(models.dir, 'm2'), { size: 64 });
      const pki = makePki(h.dir);
      const pw = makePasswordFile(join(h.dir, 'passwd'), { edge: PASSWORD });
      await h.startBroker({ tls: pki, passwordFile: pw }, { username: 'edge', password: PASSWORD, ca: pki.ca });
      const cam = await h.camera();
      const wrong = `${PASSWORD}-wrong`;
      const cfg = await h.config([{ id: 'cam1', url: cam.url }], { mqtt: { username: 'edge', ca: pki.ca }, log: { level: 'debug' } });
      const d = h.daemon(cfg, { env: { ETSTPM_MQTT_PASSWORD: wrong } });
      // mosquitto answers CONNACK "Not authorized" / "Bad User Name or Password"; the daemon must log it (the
      // configuration dump at start is excluded: it contains "rejectUnauthorized")
      const refusal = /not authori[sz]ed|bad user ?name or password/i;
      await waitFor('the daemon to report the refused connection',
        () => d.proc.lines.some((l) => !l.includes('rejectUnauthorized') && refusal.test(l)), 30000);
      assert.ok(d.running, `a refused broker login must not crash the daemon; output:\n${d.proc.tail()}`);
      assert.equal(h.mqtt.on(h.topic('cam1', 'result')).length, 0);
      await d.stop();
      assert.ok(!d.output().includes(wrong), 'the MQTT password must never be logged');
    } finally {
      await h.close();
    }
  });
});
