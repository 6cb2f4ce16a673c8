// Same input, two builds, the same output? Runs two daemon builds (each a folder holding dist/src/main.js, e.g. the
// old commit built in a worktree and this one) one after the other on the same deterministic camera (synthetic://
// with a fixed seed: frame k is the same image in both runs) and the same config, through a real mosquitto, and
// compares what each published: results, rejects and snapshots per (camera, seq), camera statuses and the daemon
// status, minus what depends on the clock. A refactor that claims "behaviour unchanged" runs this
// (docs/testing.md, "Comparing two builds").
//
//   node dist/bench/daemon/compare-builds.js --old /tmp/old --new . [--frames 40] [--fps 2] [--out FILE.json]
//
// Frames the pipeline dropped in one run and not the other (the machine's load decides) cannot be compared: each
// payload is compared on the seqs both runs scored, and the counts are reported. Statuses carry counters and
// rates that depend on timing (fps, captured, processed, dropped, repeated, since, drift share and frames): compared are
// their key order and every other field, as the sequence of distinct values per camera.
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { freePort, REPO, tmpDir } from '../../test/integration/helpers/env';
import { Mosquitto } from '../../test/integration/helpers/mosquitto';
import { MqttCollector, Received } from '../../test/integration/helpers/mqtt-collector';
import { Proc } from '../../test/integration/helpers/proc';
import { waitFor } from '../../test/integration/helpers/wait';
import { arg } from './proc';

type Json = Record<string, unknown>;

interface RunRecord {
  build: string;
  results: Map<string, string>;
  rejects: Map<string, string>;
  snapshots: Map<string, string>;
  statuses: Map<string, string[]>;
  daemonStatus: string[];
  exit: string;
}

const PREFIX = 'cmp';
const CAMERAS = ['line', 'strict'];

function config(mqttUrl: string, fps: number, httpPort: number): Json {
  return {
    cameras: [
      { id: 'line', url: `synthetic://?seed=7&fps=${fps}&defectRate=0.3` },
      // A threshold override (docs/configuration.md): another normalisation, more NG frames, a `threshold` source.
      { id: 'strict', url: `synthetic://?seed=11&fps=${fps}&defectRate=0.3`, threshold: 0.5 },
    ],
    model: { dir: join(REPO, 'models', 'demo'), providers: ['cpu'], maxBatch: 2 },
    mqtt: { url: mqttUrl, topicPrefix: PREFIX, clientId: 'cmp-daemon' },
    http: { port: httpPort },
    status: { intervalMs: 1000 },
    snapshot: { onNg: true, everyN: 5, format: 'jpeg' },
    log: { level: 'warn' },
  };
}

/** The payload without its clock-dependent fields, keys in the order published. */
function strip(payload: Buffer, drop: readonly string[]): Json {
  const j = JSON.parse(payload.toString('utf8')) as Json;
  for (const k of drop) delete j[k];
  return j;
}

function byCameraSeq(msgs: Received[], render: (m: Received) => string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of msgs) {
    const j = JSON.parse(m.payload.toString('utf8')) as Json;
    out.set(`${String(j.camera)}#${String(j.seq)}`, render(m));
  }
  return out;
}

async function runBuild(build: string, broker: Mosquitto, frames: number, fps: number): Promise<RunRecord> {
  const tmp = tmpDir('etstpm-cmp-');
  const main = join(resolve(build), 'dist', 'src', 'main.js');
  const cfgFile = join(tmp.dir, 'config.json');
  writeFileSync(cfgFile, JSON.stringify(config(broker.url, fps, await freePort()), null, 2));
  const col = await new MqttCollector({ url: broker.url, topics: [`${PREFIX}/#`] }).start();
  // Retained statuses of the previous run: cleared so that each run is seen from its own start.
  for (const c of CAMERAS) col.client.publish(`${PREFIX}/${c}/status`, '', { retain: true });
  col.client.publish(`${PREFIX}/status`, '', { retain: true });
  await new Promise((r) => setTimeout(r, 500));
  const since = Date.now();
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('ETSTPM_')) delete env[k];
  const proc = new Proc(`daemon(${build})`, process.execPath, [main, '--config', cfgFile], { cwd: resolve(build), env });
  try {
    const scored = (c: string) => col.on(`${PREFIX}/${c}/result`, since).map((m) => Number((JSON.parse(m.payload.toString()) as Json).seq));
    await waitFor(`${frames} frames of each camera scored by ${build}`, () => {
      if (!proc.running) throw new Error(`daemon exited: ${proc.tail()}`);
      return CAMERAS.every((c) => scored(c).some((s) => s >= frames));
    }, 30000 + (frames / fps) * 4000, 200);
    const exit = await proc.stop(10000);
    await new Promise((r) => setTimeout(r, 1000)); // the final statuses and "offline" reach the collector
    const on = (t: string) => col.on(`${PREFIX}/${t}`, since).filter((m) => m.payload.length > 0);
    const inRange = (m: Received) => Number((JSON.parse(m.payload.toString()) as Json).seq) <= frames;
    const rec: RunRecord = {
      build,
      results: new Map(),
      rejects: new Map(),
      snapshots: new Map(),
      statuses: new Map(),
      daemonStatus: on('status').map((m) => m.payload.toString('utf8')),
      exit: JSON.stringify(exit),
    };
    for (const c of CAMERAS) {
      for (const [k, v] of byCameraSeq(on(`${c}/result`).filter(inRange), (m) => JSON.stringify(strip(m.payload, ['capturedAt', 'latencyMs'])))) rec.results.set(k, v);
      for (const [k, v] of byCameraSeq(on(`${c}/reject`).filter(inRange), (m) => {
        const j = strip(m.payload, []);
        j.deadline = (j.deadline as number) - (j.capturedAt as number); // the deadline relative to capture
        delete j.capturedAt;
        return JSON.stringify(j);
      })) rec.rejects.set(k, v);
      const snaps = on(`${c}/snapshot`).filter((m) => Number(m.properties?.userProperties?.seq) <= frames);
      for (const m of snaps) {
        const u = m.properties?.userProperties ?? {};
        rec.snapshots.set(`${String(u.camera)}#${String(u.seq)}`, JSON.stringify({ user: u, contentType: m.properties?.contentType, sha256: createHash('sha256').update(m.payload).digest('hex') }));
      }
      const seq: string[] = [];
      for (const m of on(`${c}/status`)) {
        const j = strip(m.payload, ['fps', 'captured', 'processed', 'dropped', 'repeated', 'since']);
        if (j.drift && typeof j.drift === 'object') {
          delete (j.drift as Json).share;
          delete (j.drift as Json).frames; // how many OK frames were in the window when the status went out
        }
        const s = JSON.stringify(j);
        if (seq.at(-1) !== s) seq.push(s);
      }
      rec.statuses.set(c, seq);
    }
    return rec;
  } finally {
    await proc.stop(3000);
    await col.stop();
    tmp.remove();
  }
}

interface Diff { compared: number; onlyOld: number; onlyNew: number; mismatches: { key: string; old: string; new: string }[] }

function diffMaps(a: Map<string, string>, b: Map<string, string>): Diff {
  const d: Diff = { compared: 0, onlyOld: 0, onlyNew: 0, mismatches: [] };
  for (const [k, v] of a) {
    const w = b.get(k);
    if (w === undefined) d.onlyOld++;
    else {
      d.compared++;
      if (v !== w) d.mismatches.push({ key: k, old: v, new: w });
    }
  }
  for (const k of b.keys()) if (!a.has(k)) d.onlyNew++;
  return d;
}

async function main(): Promise<void> {
  const oldBuild = arg('old');
  const newBuild = arg('new', '.') as string;
  if (!oldBuild) throw new Error('--old <folder with dist/src/main.js> is required');
  const frames = Number(arg('frames', '40'));
  const fps = Number(arg('fps', '2'));
  const tmp = tmpDir('etstpm-cmp-broker-');
  const broker = await new Mosquitto({ dir: tmp.dir }).start();
  try {
    const a = await runBuild(oldBuild, broker, frames, fps);
    const b = await runBuild(newBuild, broker, frames, fps);
    const statusDiff = Object.fromEntries(CAMERAS.map((c) => {
      const x = a.statuses.get(c) ?? [];
      const y = b.statuses.get(c) ?? [];
      return [c, { old: x.length, new: y.length, equal: JSON.stringify(x) === JSON.stringify(y), ...(JSON.stringify(x) === JSON.stringify(y) ? {} : { oldSeq: x, newSeq: y }) }];
    }));
    const report = {
      command: `node dist/bench/daemon/compare-builds.js --old ${oldBuild} --new ${newBuild} --frames ${frames} --fps ${fps}`,
      date: new Date().toISOString(),
      cameras: CAMERAS,
      results: diffMaps(a.results, b.results),
      rejects: diffMaps(a.rejects, b.rejects),
      snapshots: diffMaps(a.snapshots, b.snapshots),
      statuses: statusDiff,
      daemonStatus: { old: a.daemonStatus, new: b.daemonStatus, equal: JSON.stringify(a.daemonStatus) === JSON.stringify(b.daemonStatus) },
      exits: { old: a.exit, new: b.exit },
    };
    const same = report.results.mismatches.length === 0 && report.rejects.mismatches.length === 0 && report.snapshots.mismatches.length === 0
      && Object.values(statusDiff).every((s) => s.equal) && report.daemonStatus.equal && report.results.compared > 0;
    const out = arg('out');
    if (out) writeFileSync(out, `${JSON.stringify({ ...report, same }, null, 2)}\n`);
    console.log(JSON.stringify({ same, results: { ...report.results, mismatches: report.results.mismatches.length }, rejects: { ...report.rejects, mismatches: report.rejects.mismatches.length },
      snapshots: { ...report.snapshots, mismatches: report.snapshots.mismatches.length }, statuses: Object.fromEntries(Object.entries(statusDiff).map(([c, s]) => [c, { old: s.old, new: s.new, equal: s.equal }])), daemonStatus: report.daemonStatus.equal }, null, 2));
    process.exitCode = same ? 0 : 1;
  } finally {
    await broker.stop();
    tmp.remove();
  }
}

void main().catch((err: Error) => {
  console.error(err.stack ?? err.message);
  process.exit(2);
});
