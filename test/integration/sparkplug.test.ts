// Sparkplug B (docs/sparkplug.md): the daemon as a Sparkplug 3.0 edge node on a real mosquitto, checked by an independent
// host (protobufjs + the spec's sparkplug_b.proto, helpers/sparkplug-host.ts; never the daemon's encoder).
// Births, data, aliases, seq order and wrap, rebirth on NCMD, DDEATH on camera removal (SIGHUP), bdSeq pairing
// of NBIRTH and the broker-sent NDEATH across a killed connection and a broker restart, and the primary host's STATE.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Camera } from './helpers/daemon';
import { missing, REPO, tmpDir } from './helpers/env';
import { Harness, ResultMsg } from './helpers/harness';
import { alwaysNgCopy, ModelManifest } from './helpers/model';
import { metric, SparkplugHost, SpMessage, stopAllHosts } from './helpers/sparkplug-host';
import { TcpProxy } from './helpers/tcp-proxy';
import { waitFor } from './helpers/wait';

const START_MS = 60000;  // daemon start to births (model load, ffmpeg) on a loaded 2-core machine
const EVENT_MS = 20000;  // one protocol step (rebirth, reconnect, DDEATH)

const skip = missing('daemon', 'mosquitto', 'ffmpeg');
const models = tmpDir('etstpm-spb-models-');
let ngModel: { dir: string; manifest: ModelManifest };

before(() => {
  if (skip) return;
  // The committed tiny model with its threshold below every score: every frame is NG (verdict and NG count move).
  ngModel = alwaysNgCopy(join(REPO, 'test', 'unit', 'fixtures', 'tiny-model'), join(models.dir, 'ng'));
});
after(async () => {
  await stopAllHosts();
  models.remove();
});

const NODE = 'edge1';
const cam = (id: string, fps = 10): Camera => ({ id, url: `synthetic://?fps=${fps}&size=64&seed=${id.length}` });
const DEVICE_METRICS: Record<string, string> = {
  'Inspection/Score': 'Double',
  'Inspection/Verdict': 'String',
  'Inspection/NG Count': 'UInt64',
  'Inspection/Frame Seq': 'UInt64',
  'Inspection/Latency ms': 'Double',
  'Camera/State': 'String',
  'Camera/FPS': 'Double',
  'Model/Name': 'String',
  'Model/Version': 'String',
  'Inspection/Raw Threshold': 'Double',
  'Inspection/Threshold Source': 'String',
  'Inspection/Drift Share': 'Double',
};

async function setup(h: Harness, cameras: Camera[], sparkplug: Record<string, unknown> = {}, mqttUrl?: string) {
  h.model = ngModel;
  await h.startBroker();
  const host = await new SparkplugHost(h.broker.url, h.prefix).start();
  const cfg = await h.config(cameras, { sparkplug: { enabled: true, groupId: h.prefix, edgeNodeId: NODE, ...sparkplug } }, true);
  if (mqttUrl) (cfg.mqtt as Record<string, unknown>).url = mqttUrl;
  return { host, cfg };
}

/** Every message of the node from `from` on, in arrival order: seq steps by one mod 256, NBIRTH restarts at 0. */
function assertSeqChain(msgs: SpMessage[]): void {
  let prev: number | null = null;
  for (const m of msgs) {
    if (m.type === 'NCMD') continue; // the host's own command
    if (m.type === 'NDEATH') {
      assert.equal(m.seq, undefined, 'NDEATH carries no seq');
      prev = null;
      continue;
    }
    assert.equal(typeof m.seq, 'number', `${m.topic} has a seq`);
    if (m.type === 'NBIRTH') assert.equal(m.seq, 0, 'NBIRTH seq is 0');
    else if (prev !== null) assert.equal(m.seq, (prev + 1) % 256, `${m.topic} seq follows ${prev}`);
    prev = m.seq!;
  }
}

/** alias -> {name, datatype} of the node and each device, from the latest births at or before `upTo`. */
function aliasMap(host: SparkplugHost, upTo: number): Map<number, { name: string; datatype: string; device?: string }> {
  const map = new Map<number, { name: string; datatype: string; device?: string }>();
  const births = host.all().filter((m) => m.index <= upTo && (m.type === 'NBIRTH' || m.type === 'DBIRTH'));
  for (const b of births) {
    for (const x of b.metrics) if (x.alias !== undefined) map.set(x.alias, { name: x.name!, datatype: x.datatype, device: b.device });
  }
  return map;
}

function bdSeq(m: SpMessage): number {
  const b = metric(m, 'bdSeq');
  assert.ok(b, `${m.type} carries bdSeq`);
  assert.equal(b.datatype, 'UInt64', 'bdSeq is UInt64');
  return b.value as number;
}

describe('Sparkplug B edge node against mosquitto and an independent host', { skip }, () => {
  test('births, data with aliases, seq order and wrap, rebirth on NCMD, DDEATH on SIGHUP removal', async () => {
    const h = new Harness();
    try {
      const { host, cfg } = await setup(h, [cam('cam1'), cam('cam2')]);
      const d = h.daemon(cfg);
      const nbirth = await h.explain(host.waitFor('NBIRTH', (m) => m.type === 'NBIRTH', START_MS));
      assert.equal(nbirth.topic, `spBv1.0/${h.prefix}/NBIRTH/${NODE}`);
      assert.equal(nbirth.seq, 0);
      assert.equal(bdSeq(nbirth), 0, 'first session bdSeq 0');
      const rebirth = metric(nbirth, 'Node Control/Rebirth');
      assert.deepEqual([rebirth?.datatype, rebirth?.value], ['Boolean', false]);
      const mf = ngModel.manifest;
      assert.equal(metric(nbirth, 'Model/Name')?.value, mf.name);
      assert.equal(metric(nbirth, 'Model/Version')?.value, mf.version);
      // model.json's method; a model without the key (this committed tiny model) is stpm (docs/model-format.md).
      assert.equal(metric(nbirth, 'Model/Method')?.value, mf.method ?? 'stpm');
      assert.equal(metric(nbirth, 'Model/Threshold')?.value, 0.5);
      assert.equal(metric(nbirth, 'Model/Raw Threshold')?.value, -1);
      assert.match(String(metric(nbirth, 'Inference/Provider')?.value), /cpu/i);
      assert.ok(['starting', 'ready'].includes(String(metric(nbirth, 'Status')?.value)));
      assert.equal(typeof nbirth.timestamp, 'number');

      // DBIRTH per camera, every metric named, typed, aliased; aliases unique across the node.
      const dbirths = await h.explain(waitFor('DBIRTH of both cameras', () => {
        const b = ['cam1', 'cam2'].map((c) => host.of('DBIRTH', c)[0]);
        return b.every(Boolean) ? b : undefined;
      }, EVENT_MS));
      const aliases = new Set<number>();
      for (const m of [nbirth, ...dbirths]) {
        for (const x of m.metrics) {
          if (x.alias === undefined) continue;
          assert.ok(!aliases.has(x.alias), `alias ${x.alias} (${x.name}) unique`);
          aliases.add(x.alias);
        }
      }
      for (const b of dbirths) {
        assert.deepEqual(Object.fromEntries(b.metrics.map((x) => [x.name, x.datatype])), DEVICE_METRICS, `${b.device} DBIRTH metrics`);
        assert.ok(b.metrics.every((x) => typeof x.alias === 'number'), 'device metrics have aliases');
        assert.equal(metric(b, 'Inspection/Raw Threshold')?.value, ngModel.manifest.threshold.raw, `${b.device}: the model's threshold`);
        assert.equal(metric(b, 'Inspection/Threshold Source')?.value, 'model');
      }

      // NDATA says "ready" (unless the NBIRTH already did).
      if (metric(nbirth, 'Status')?.value !== 'ready') {
        const statusAlias = metric(nbirth, 'Status')!.alias!;
        await h.explain(host.waitFor('NDATA Status=ready', (m) => m.type === 'NDATA' && m.metrics.some((x) => x.alias === statusAlias && x.value === 'ready'), EVENT_MS));
      }

      // DDATA: alias-only metrics that resolve to the births' names and types; NG counts climb; JSON results agree.
      await h.explain(waitFor('20 DDATA per camera', () => ['cam1', 'cam2'].every((c) => host.of('DDATA', c).length >= 20), START_MS));
      const names = aliasMap(host, host.all().length);
      for (const c of ['cam1', 'cam2']) {
        let lastNg = 0;
        for (const dd of host.of('DDATA', c)) {
          for (const x of dd.metrics) {
            assert.equal(x.name, undefined, 'DDATA metrics by alias only');
            const def = names.get(x.alias!);
            assert.ok(def && def.device === c, `DDATA ${c} alias ${x.alias} was born for this device`);
            assert.equal(x.datatype, def.datatype, `${def.name} keeps its birth datatype`);
            if (def.name === 'Inspection/Score') assert.ok((x.value as number) >= 0.5 && (x.value as number) <= 1, 'NG score');
            if (def.name === 'Inspection/Verdict') assert.equal(x.value, 'ng');
            if (def.name === 'Inspection/NG Count') {
              assert.ok((x.value as number) > lastNg, 'NG count increases');
              lastNg = x.value as number;
            }
          }
        }
        const results = h.mqtt.json<ResultMsg>(h.topic(c, 'result'));
        assert.ok(results.length > 0 && results.every((r) => r.verdict === 'ng'), 'JSON topics still published');
      }

      // seq wraps 255 -> 0 (at ~20 messages/s about 13 s).
      await h.explain(waitFor('seq wrap', () => host.all().some((m, i, a) => m.seq === 0 && m.type !== 'NBIRTH' && a[i - 1]?.seq === 255), 120000));

      // Rebirth: NCMD Node Control/Rebirth -> NBIRTH (seq 0, same bdSeq) + both DBIRTHs, data continues.
      const mark = host.all().length - 1;
      await host.rebirth(NODE);
      const reborn = await h.explain(host.waitFor('NBIRTH after NCMD', (m) => m.type === 'NBIRTH', EVENT_MS, mark));
      assert.equal(bdSeq(reborn), 0, 'rebirth in the same MQTT session keeps bdSeq');
      await h.explain(waitFor('DBIRTHs after rebirth', () => ['cam1', 'cam2'].every((c) => host.of('DBIRTH', c, reborn.index).length > 0), EVENT_MS));
      const reDbirth = host.of('DBIRTH', 'cam1', reborn.index)[0];
      assert.deepEqual(reDbirth.metrics.map((x) => [x.name, x.alias]), dbirths[0].metrics.map((x) => [x.name, x.alias]), 'same aliases after rebirth');
      await h.explain(waitFor('DDATA after rebirth', () => host.of('DDATA', 'cam1', reborn.index).length >= 3, EVENT_MS));

      // SIGHUP without cam2: DDEATH for cam2, no cam2 data after it, cam1 goes on.
      writeFileSync(d.configFile, JSON.stringify({ ...cfg, cameras: [cam('cam1')] }));
      d.proc.signal('SIGHUP');
      const ddeath = await h.explain(host.waitFor('DDEATH cam2', (m) => m.type === 'DDEATH' && m.device === 'cam2', EVENT_MS));
      assert.equal(ddeath.topic, `spBv1.0/${h.prefix}/DDEATH/${NODE}/cam2`);
      await h.explain(waitFor('cam1 DDATA after DDEATH', () => host.of('DDATA', 'cam1', ddeath.index).length >= 5, EVENT_MS));
      assert.equal(host.of('DDATA', 'cam2', ddeath.index).length, 0, 'no DDATA from a dead device');

      assertSeqChain(host.all());
      assert.deepEqual(host.errors, [], 'every payload decodes with the spec .proto');

      // Clean stop: the node publishes NDEATH itself (a DISCONNECT suppresses the will) with the session's bdSeq.
      const before = host.all().length - 1;
      await d.stop();
      const death = await h.explain(host.waitFor('NDEATH on SIGTERM', (m) => m.type === 'NDEATH', EVENT_MS, before));
      assert.equal(bdSeq(death), 0);
      const health = h.diag(400);
      assert.ok(!/uncaught/i.test(health), 'no uncaught exception');
      await host.stop();
    } finally {
      await h.close();
    }
  });

  test('bdSeq pairs NBIRTH with the broker-sent NDEATH across a killed connection and a broker restart', async () => {
    const h = new Harness();
    let proxy: TcpProxy | null = null;
    try {
      h.model = ngModel;
      await h.startBroker();
      proxy = await new TcpProxy(h.broker.port).start();
      const { host, cfg } = await setupOn(h, proxy);
      h.daemon(cfg);
      const b0 = await h.explain(host.waitFor('NBIRTH', (m) => m.type === 'NBIRTH', START_MS));
      await h.explain(host.waitFor('DDATA', (m) => m.type === 'DDATA', EVENT_MS, b0.index));

      // 1. The connection dies under the daemon: the broker publishes the will = NDEATH with b0's bdSeq.
      proxy.cut();
      const death0 = await h.explain(host.waitFor('NDEATH (will)', (m) => m.type === 'NDEATH', EVENT_MS, b0.index));
      assert.equal(bdSeq(death0), bdSeq(b0), 'NDEATH carries the bdSeq of the NBIRTH before it');
      const b1 = await h.explain(host.waitFor('NBIRTH after reconnect', (m) => m.type === 'NBIRTH', EVENT_MS, death0.index));
      assert.equal(bdSeq(b1), (bdSeq(b0) + 1) % 256, 'next session: bdSeq + 1');
      await h.explain(host.waitFor('DBIRTH after reconnect', (m) => m.type === 'DBIRTH' && m.device === 'cam1', EVENT_MS, b1.index));

      // 2. The broker restarts (no will: the broker itself died): a new NBIRTH with a later bdSeq, then data.
      await h.broker.kill();
      await h.broker.start();
      // The host resubscribes within 200 ms, the daemon retries every second, so the host normally sees the NBIRTH;
      // if the daemon won that race, the host does what a Sparkplug host does on data without a birth: NCMD rebirth.
      let b2 = await host.waitFor('NBIRTH after broker restart', (m) => m.type === 'NBIRTH', 45000, b1.index).catch(() => null);
      if (!b2) {
        await host.rebirth(NODE);
        b2 = await h.explain(host.waitFor('NBIRTH after broker restart and NCMD', (m) => m.type === 'NBIRTH', EVENT_MS, b1.index));
      }
      assert.notEqual(bdSeq(b2), bdSeq(b1), 'a new session after the broker restart');
      await h.explain(host.waitFor('DDATA after broker restart', (m) => m.type === 'DDATA', EVENT_MS, b2.index));

      // 3. And that session's will pairs with it too.
      proxy.cut();
      const death2 = await h.explain(host.waitFor('NDEATH after restart', (m) => m.type === 'NDEATH', EVENT_MS, b2.index));
      assert.equal(bdSeq(death2), bdSeq(b2));
      await h.explain(host.waitFor('NBIRTH again', (m) => m.type === 'NBIRTH', EVENT_MS, death2.index));

      // seq restarts at 0 with each NBIRTH and runs on by one within each session.
      const msgs = host.all();
      const firstBirth = msgs.findIndex((m) => m.type === 'NBIRTH');
      assertSeqChainPerSession(msgs.slice(firstBirth));
      assert.deepEqual(host.errors, []);
      await host.stop();
    } finally {
      await proxy?.stop();
      await h.close();
    }
  });

  test('primary host STATE: silent while offline, NDEATH when it goes offline, rebirth when it returns', async () => {
    const h = new Harness();
    try {
      const { host, cfg } = await setup(h, [cam('cam1', 5)], { primaryHostId: 'scada1' });
      await host.state('scada1', false, Date.now());
      const d = h.daemon(cfg);
      // Scoring runs (JSON results) and the node waits: no Sparkplug publication.
      await h.explain(d.proc.waitLine(/waiting for the primary host application/, START_MS));
      await h.explain(waitFor('5 JSON results', () => h.mqtt.json(h.topic('cam1', 'result')).length >= 5, START_MS));
      assert.equal(host.all().filter((m) => m.node === NODE && m.type !== 'NCMD').length, 0, 'nothing published while the host is offline');

      await host.state('scada1', true, Date.now());
      const b0 = await h.explain(host.waitFor('NBIRTH once online', (m) => m.type === 'NBIRTH', EVENT_MS));
      await h.explain(host.waitFor('DDATA', (m) => m.type === 'DDATA', EVENT_MS, b0.index));

      // A stale STATE (older timestamp) is ignored: no NDEATH, data goes on.
      await host.state('scada1', false, 1);
      const mark = host.all().length - 1;
      await h.explain(host.waitFor('DDATA after a stale STATE', (m) => m.type === 'DDATA', EVENT_MS, mark));
      await host.state('scada1', true, Date.now());
      await h.explain(host.waitFor('more DDATA after a stale STATE', (m) => m.type === 'DDATA', EVENT_MS, host.all().length - 1));
      assert.equal(host.of('NDEATH', undefined, b0.index).length, 0, 'a stale offline STATE is ignored');
      // Offline: the node publishes NDEATH (same bdSeq), reconnects, and stays silent.
      await host.state('scada1', false, Date.now() + 1);
      const death = await h.explain(host.waitFor('NDEATH on host offline', (m) => m.type === 'NDEATH', EVENT_MS, b0.index));
      assert.equal(bdSeq(death), bdSeq(b0));
      const since = Date.now();
      await h.explain(waitFor('JSON results while host offline', () => h.mqtt.json(h.topic('cam1', 'result'), since).length >= 5, EVENT_MS));
      const silent = host.all().filter((m) => m.index > death.index && m.type !== 'NCMD');
      assert.deepEqual(silent.map((m) => m.type), [], 'nothing after NDEATH while the host is offline');

      // Back online: rebirth with the next bdSeq.
      await host.state('scada1', true, Date.now() + 2);
      const b1 = await h.explain(host.waitFor('NBIRTH after host returns', (m) => m.type === 'NBIRTH', EVENT_MS, death.index));
      assert.equal(bdSeq(b1), (bdSeq(b0) + 1) % 256);
      await h.explain(host.waitFor('DBIRTH after host returns', (m) => m.type === 'DBIRTH' && m.device === 'cam1', EVENT_MS, b1.index));
      assert.deepEqual(host.errors, []);
      await host.stop();
    } finally {
      await h.close();
    }
  });
});

describe('Sparkplug B rate-limited data', { skip }, () => {
  test('sparkplug.dataPeriodMs: at most one DDATA per period per camera, carrying the latest values', async () => {
    const h = new Harness();
    try {
      const { host, cfg } = await setup(h, [cam('cam1', 10)], { dataPeriodMs: 1000 });
      h.daemon(cfg);
      const b = await h.explain(host.waitFor('NBIRTH', (m) => m.type === 'NBIRTH', START_MS));
      await h.explain(waitFor('4 DDATA', () => host.of('DDATA', 'cam1', b.index).length >= 4, EVENT_MS));
      const dd = host.of('DDATA', 'cam1', b.index);
      const names = aliasMap(host, dd[0].index);
      const ngAlias = [...names].find(([, v]) => v.name === 'Inspection/NG Count' && v.device === 'cam1')![0];
      // A timer cannot fire more often than its period: the DDATA payload timestamps (set when sent) are >= ~1 s apart.
      for (let i = 1; i < dd.length; i++) {
        const gap = dd[i].timestamp! - dd[i - 1].timestamp!;
        assert.ok(gap >= 950, `DDATA ${i} sent ${gap} ms after the previous`);
      }
      // Each carries the latest NG count, several frames on from the previous one (10 fps camera).
      const counts = dd.map((m) => m.metrics.find((x) => x.alias === ngAlias)?.value as number | undefined).filter((v): v is number => v !== undefined);
      assert.ok(counts.length >= 3, 'NG count in the DDATA');
      assert.ok(counts.slice(1).some((c, i) => c - counts[i] > 1), `NG count jumps by more than one between DDATA: ${counts.join(',')}`);
      const results = h.mqtt.json<ResultMsg>(h.topic('cam1', 'result'));
      assert.ok(results.length > dd.length, 'the JSON topic still has every result');
      assert.deepEqual(host.errors, []);
    } finally {
      await h.close();
    }
  });
});

async function setupOn(h: Harness, proxy: TcpProxy) {
  const host = await new SparkplugHost(h.broker.url, h.prefix).start();
  const cfg = await h.config([cam('cam1', 5)], { sparkplug: { enabled: true, groupId: h.prefix, edgeNodeId: NODE } });
  (cfg.mqtt as Record<string, unknown>).url = proxy.url;
  return { host, cfg };
}

/** Like assertSeqChain, but a broker restart may lose the tail of a session: only births restart the chain. */
function assertSeqChainPerSession(msgs: SpMessage[]): void {
  let prev: number | null = null;
  for (const m of msgs) {
    if (m.type === 'NDEATH' || m.type === 'NCMD') continue;
    if (m.type === 'NBIRTH') {
      assert.equal(m.seq, 0);
      prev = 0;
      continue;
    }
    if (prev !== null) assert.equal(m.seq, (prev + 1) % 256, `${m.topic} seq follows ${prev}`);
    prev = m.seq!;
  }
}
