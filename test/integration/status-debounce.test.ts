/**
 * Retained-status debounce (docs/mqtt.md, "Status debounce") against a real mosquitto: a camera pointed at a closed
 * port fails, reconnects after the backoff and fails again every ~2 s. With the default hold its retained status
 * topic says `failed` once and stays quiet; with status.failedHoldMs = 0 (report every state) the same camera
 * alternates connecting/failed, which is the chatter the hold removes. The same holds for the Sparkplug device's
 * Camera/State metric (decoded by the test's own Sparkplug host). The periodic status is set to a minute so that only
 * state-driven publications are counted.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { baseConfig, Daemon } from './helpers/daemon';
import { freePort, missing, REPO, tmpDir } from './helpers/env';
import { Mosquitto } from './helpers/mosquitto';
import { MqttCollector } from './helpers/mqtt-collector';
import { SparkplugHost } from './helpers/sparkplug-host';
import { waitFor } from './helpers/wait';

const DEMO_MODEL = join(REPO, 'models', 'demo');
const WATCH_MS = 10000;
const skip = missing('daemon', 'mosquitto', 'ffmpeg') || (existsSync(join(DEMO_MODEL, 'model.onnx')) ? false : `SKIPPED: demo model missing at ${DEMO_MODEL}`);

interface Status { camera: string; state: string; error?: string; since: number }

describe('retained camera status of a failing camera, real mosquitto', { skip }, () => {
  const tmp = tmpDir('etstpm-debounce-it-');
  let broker: Mosquitto;

  before(async () => {
    broker = await new Mosquitto({ dir: tmp.dir }).start();
  });
  after(async () => {
    await broker?.stop();
    tmp.remove();
  });

  /** Runs a daemon with one camera on a closed port; returns the states published on its status topic over WATCH_MS after the first failure. */
  async function watch(prefix: string, failedHoldMs: number | undefined): Promise<{ states: string[]; all: Status[]; sparkplug: string[] }> {
    const closed = await freePort();
    const mqtt = await new MqttCollector({ url: broker.url, topics: [`${prefix}/#`] }).start();
    const host = await new SparkplugHost(broker.url, prefix).start();
    const d = new Daemon(tmp.dir, baseConfig({
      cameras: [{ id: 'dead', url: `rtsp://127.0.0.1:${closed}/cam` }],
      modelDir: DEMO_MODEL,
      mqttUrl: broker.url,
      prefix,
      extra: { status: { intervalMs: 60000, ...(failedHoldMs === undefined ? {} : { failedHoldMs }) }, sparkplug: { enabled: true, groupId: prefix, edgeNodeId: 'edge' } },
    }), { name: `debounce-${prefix}` });
    try {
      const topic = `${prefix}/dead/status`;
      const first = await waitFor('the first "failed" status', () => mqtt.json<Status>(topic).find((s) => s.state === 'failed') && mqtt.on(topic).find((m) => m.payload.includes('"failed"')), 60000, 100);
      await new Promise((r) => setTimeout(r, WATCH_MS));
      const all = mqtt.json<Status>(topic, first.t);
      // The decoder really kept retrying during the window (it is not just a quiet camera).
      const attempts = d.proc.lines.filter((l) => l.includes('starting decoder')).length;
      assert.ok(attempts >= 3, `decoder attempts: ${attempts}\n${d.proc.tail()}`);
      // DDATA carries aliases only: the device's birth names them.
      const births = host.all().filter((m) => m.device === 'dead' && m.type === 'DBIRTH');
      const stateAlias = births.at(-1)?.metrics.find((x) => x.name === 'Camera/State')?.alias;
      assert.ok(births.length > 0 && stateAlias !== undefined, 'the camera\'s Sparkplug device was born with Camera/State');
      const sparkplug = host.all().filter((m) => m.device === 'dead' && m.t >= first.t && (m.type === 'DDATA' || m.type === 'DBIRTH'))
        .flatMap((m) => m.metrics.filter((x) => x.name === 'Camera/State' || (x.name === undefined && x.alias === stateAlias)).map((x) => String(x.value)));
      return { states: all.map((s) => s.state), all, sparkplug };
    } finally {
      await d.stop(3000);
      await mqtt.stop();
      await host.stop();
    }
  }

  it('default hold: `failed` once, no `connecting` in between, reason kept', async () => {
    const { states, all, sparkplug } = await watch('debounce-on', undefined);
    process.stderr.write(`# hold on: ${states.length} status messages in ${WATCH_MS} ms after the first failure: ${states.join(',')}; Sparkplug Camera/State: ${sparkplug.join(',') || 'none'}\n`);
    assert.ok(!states.includes('connecting'), `connecting published after failed: ${states.join(',')}`);
    assert.ok(!sparkplug.includes('connecting'), `Sparkplug Camera/State connecting after failed: ${sparkplug.join(',')}`);
    assert.ok(states.length <= 2, `status messages: ${states.join(',')}`);
    for (const s of all) assert.ok(s.error && s.error.length > 0, 'a failed status carries its reason');
  });

  it('failedHoldMs = 0: the same camera chatters connecting/failed (what the hold removes)', async () => {
    const { states, sparkplug } = await watch('debounce-off', 0);
    process.stderr.write(`# hold off: ${states.length} status messages in ${WATCH_MS} ms after the first failure: ${states.join(',')}; Sparkplug Camera/State: ${sparkplug.join(',') || 'none'}\n`);
    assert.ok(states.filter((s) => s === 'connecting').length >= 2, `expected connecting/failed alternation: ${states.join(',')}`);
    assert.ok(sparkplug.filter((s) => s === 'connecting').length >= 2, `expected Sparkplug connecting/failed alternation: ${sparkplug.join(',')}`);
  });
});
