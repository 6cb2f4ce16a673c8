/**
 * Operator console (docs/console.md) in-process: its HTTP routes on the daemon's real health server, fed with scored frames
 * the way the pipeline's tap feeds them. Bad input, auth, caps, disk-full (size-limited and read-only tmpfs mounts,
 * a file in the way), false-reject saves, bounded memory, MQTT commands through the embedded broker.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import sharp from 'sharp';
import { createConsole, ConsoleParts } from '../../src/console';
import { CameraHistory } from '../../src/console/history';
import { composeOverlay } from '../../src/render/overlay';
import { renderSnapshot } from '../../src/render/snapshot';
import type { ConsoleResult } from '../../src/console/types';
import { startHttp, HttpServer } from '../../src/health/http';
import { Metrics } from '../../src/health/metrics';
import { startEmbeddedBroker } from '../../src/publish/broker';
import { captureLog, CapturedLog, until } from './helpers';

const W = 64;
const H = 64;
const NORM = { threshold: 1, min: 0, max: 2 };

/** A frame with a gradient that depends on seq (so frames differ) and a map with a hot blob when ng. */
function result(camera: string, seq: number, ng: boolean): ConsoleResult {
  const frame = Buffer.alloc(W * H * 3);
  for (let i = 0; i < W * H; i++) {
    frame[i * 3] = (i + seq * 7) % 256;
    frame[i * 3 + 1] = (i >> 6) * 4;
    frame[i * 3 + 2] = 90;
  }
  const map = new Float32Array(W * H).fill(0.2);
  if (ng) for (let y = 20; y < 30; y++) for (let x = 20; x < 34; x++) map[y * W + x] = 1.8;
  const score = ng ? 0.9 : 0.1;
  return { camera, seq, capturedAt: Date.now(), score, rawScore: ng ? 1.8 : 0.2, verdict: ng ? 'ng' : 'ok', frame, map,
    model: { name: 'test-model', version: 'v1', width: W, height: H, normalization: NORM } };
}

interface Setup {
  parts: ConsoleParts;
  http: HttpServer;
  base: string;
  dir: string;
  logs: CapturedLog;
  close(): Promise<void>;
}

async function setup(o: { reviewDir?: string; host?: string; allowedHosts?: string[]; token?: string; root?: string; minFreeBytes?: number; ngHistory?: number; maxImages?: number; maxBytes?: number } = {}): Promise<Setup> {
  const dir = mkdtempSync(join(tmpdir(), 'etstpm-console-'));
  const logs = captureLog('debug');
  const cams = ['cam-1', 'cam 2'];
  const parts = createConsole({
    options: {
      enabled: true,
      token: o.token ?? '',
      ...(o.allowedHosts ? { allowedHosts: o.allowedHosts } : {}),
      ngHistory: o.ngHistory ?? 5,
      trendSeconds: 60,
      reviewDir: o.reviewDir ?? join(dir, 'review'),
      mqttCommands: true,
      capture: { root: o.root ?? join(dir, 'captures'), everyN: 1, maxImages: o.maxImages ?? 10, maxBytes: o.maxBytes ?? 10_000_000, minFreeBytes: o.minFreeBytes ?? 0 },
    },
    host: o.host ?? '127.0.0.1',
    topicPrefix: 'test',
    model: { name: 'm', version: 'v1', method: 'stpm', thresholdMethod: null, finetune: null, width: W, height: H, normalization: NORM },
    sources: {
      health: () => ({ ok: true, mqttConnected: true, provider: 'cpu' }),
      cameras: () => cams.map((camera) => ({ camera, state: 'streaming', fps: 5, captured: 1, processed: 1, dropped: 0, ng: 0, provider: 'cpu', model: { name: 'm', version: 'v1' }, since: 0 })),
    },
    mqtt: null,
    log: logs.log,
  });
  const http = await startHttp('127.0.0.1', 0, () => ({ ok: true }), new Metrics(), logs.log, parts.handler);
  return {
    parts,
    http,
    base: `http://127.0.0.1:${http.port}`,
    dir,
    logs,
    close: async () => {
      await parts.close();
      await http.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const post = (url: string, body: unknown = {}, headers: Record<string, string> = {}) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });

async function errorOf(r: Response): Promise<string> {
  const j = (await r.json()) as { error?: string };
  assert.equal(typeof j.error, 'string', 'a refusal carries {"error": reason}');
  return j.error as string;
}

/** Feeds frames until the capture leaves "running" (each offer returns at once; writes are async). */
async function feedUntilStopped(s: Setup, camera: string, maxFrames = 400): Promise<Record<string, any>> {
  for (let seq = 1; seq <= maxFrames; seq++) {
    s.parts.hub.onResult(result(camera, seq, false));
    await new Promise((r) => setTimeout(r, 3));
    const st = s.parts.hub.captureStatus(camera);
    if (st.state !== 'running') return st as unknown as Record<string, any>;
  }
  throw new Error(`capture of ${camera} still running after ${maxFrames} frames`);
}

function canMount(): string | null {
  if (process.getuid?.() !== 0) return 'not root';
  const d = mkdtempSync(join(tmpdir(), 'etstpm-mnt-probe-'));
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', d]);
  if (r.status !== 0) return `mount -t tmpfs failed (${r.stderr.toString().trim()})`;
  spawnSync('umount', [d]);
  rmSync(d, { recursive: true, force: true });
  return null;
}

describe('console: pages and read-only API', () => {
  let s: Setup;
  before(async () => (s = await setup()));
  after(async () => s.close());

  it('serves the page, its assets from node_modules, and a CSP that allows only the import map inline', async () => {
    const r = await fetch(`${s.base}/`);
    assert.equal(r.status, 200);
    const csp = r.headers.get('content-security-policy') ?? '';
    assert.match(csp, /script-src 'self' 'sha256-[A-Za-z0-9+/=]+'/);
    const page = await r.text();
    assert.match(page, /<script type="importmap">.*"preact":"\/assets\/preact\.mjs"/);
    for (const a of ['/assets/app.js', '/assets/preact.mjs', '/assets/hooks.mjs', '/assets/htm.mjs', '/assets/style.css']) {
      const x = await fetch(`${s.base}${a}`);
      assert.equal(x.status, 200, a);
      assert.ok((await x.arrayBuffer()).byteLength > 500, a);
    }
    // the health routes still answer on the same server
    assert.equal((await fetch(`${s.base}/healthz`)).status, 200);
    assert.equal((await fetch(`${s.base}/metrics`)).status, 200);
    const nf = await fetch(`${s.base}/nope`);
    assert.equal(nf.status, 404);
    assert.match(await nf.text(), /console/);
  });

  it('/api/state lists every camera with counters, capture state and the control mode', async () => {
    const st = (await (await fetch(`${s.base}/api/state`)).json()) as Record<string, any>;
    assert.deepEqual(st.cameras.map((c: any) => c.camera), ['cam-1', 'cam 2']);
    assert.equal(st.cameras[0].capture.state, 'idle');
    assert.equal(st.control, 'open');
    assert.equal(st.model.name, 'm');
    assert.equal(st.threshold, 0.5);
  });

  it('live view: 503 until a frame arrives while watched, then the overlay JPEG of the newest frame', async () => {
    s.parts.hub.onResult(result('cam-1', 1, true)); // nobody watches yet: not kept
    const first = await fetch(`${s.base}/api/cameras/cam-1/live.jpg`);
    assert.equal(first.status, 503);
    assert.match(await errorOf(first), /no frame yet/);
    s.parts.hub.onResult(result('cam-1', 2, true));
    const r = await fetch(`${s.base}/api/cameras/cam-1/live.jpg`);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'image/jpeg');
    assert.equal(r.headers.get('x-seq'), '2');
    assert.equal(r.headers.get('x-verdict'), 'ng');
    const img = Buffer.from(await r.arrayBuffer());
    const meta = await sharp(img).metadata();
    assert.equal(meta.width, W);
    // the mask outline (yellow) is drawn around the hot blob
    const { data } = await sharp(img).raw().toBuffer({ resolveWithObject: true }); // JPEG: colours approximate
    let yellow = 0;
    for (let i = 0; i < W * H; i++) if (data[i * 3] > 200 && data[i * 3 + 1] > 180 && data[i * 3 + 2] < 90) yellow++;
    assert.ok(yellow > 20, `outline pixels: ${yellow}`);
    // URL-encoded camera ids work, unknown ones are 404 naming the cameras
    s.parts.hub.onResult(result('cam 2', 1, false));
    assert.equal((await fetch(`${s.base}/api/cameras/cam%202/live.jpg`)).status, 503);
    const unknown = await fetch(`${s.base}/api/cameras/nope/live.jpg`);
    assert.equal(unknown.status, 404);
    assert.match(await errorOf(unknown), /unknown camera "nope".*cam-1/);
    assert.equal((await fetch(`${s.base}/api/cameras/%E0%A4%A/live.jpg`)).status, 400);
  });

  it('trend: the window of scores, bad "seconds" refused', async () => {
    const t = (await (await fetch(`${s.base}/api/cameras/cam-1/trend?seconds=60`)).json()) as { threshold: number; t: number[]; s: number[] };
    assert.equal(t.threshold, 0.5);
    assert.equal(t.t.length, t.s.length);
    assert.ok(t.s.length >= 2);
    for (const bad of ['0', '61', 'abc', '-1', '1e3']) {
      const r = await fetch(`${s.base}/api/cameras/cam-1/trend?seconds=${bad}`);
      assert.equal(r.status, 400, bad);
      assert.match(await errorOf(r), /seconds must be an integer between 1 and 60/);
    }
  });

  it('wrong methods, bad ids and unknown routes are 4xx with a reason', async () => {
    assert.equal((await fetch(`${s.base}/api/state`, { method: 'DELETE' })).status, 405);
    assert.equal((await post(`${s.base}/api/cameras/cam-1/live.jpg`)).status, 405);
    assert.equal((await fetch(`${s.base}/api/cameras/cam-1/capture/start`)).status, 405);
    const bad = await fetch(`${s.base}/api/cameras/cam-1/ng/abc.jpg`);
    assert.equal(bad.status, 400);
    assert.match(await errorOf(bad), /NG id must be a positive integer/);
    assert.equal((await fetch(`${s.base}/api/cameras/cam-1/ng/99999.jpg`)).status, 404);
    assert.equal((await fetch(`${s.base}/api/cameras/cam-1/whatever`)).status, 404);
  });
});

describe('console: overlay', () => {
  it('draws the same picture as the MQTT snapshot (snapshot.ts), within one grey level', async () => {
    const w = 96;
    const h = 80;
    const frame = Buffer.alloc(w * h * 3);
    for (let i = 0; i < frame.length; i++) frame[i] = (i * 13) % 256;
    const map = new Float32Array(w * h);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) map[y * w + x] = 0.3 + 1.4 * Math.exp(-((x - 40) ** 2 + (y - 30) ** 2) / 200);
    for (let y = 55; y < 70; y++) for (let x = 70; x < 90; x++) map[y * w + x] = 2; // a second, square defect
    const ours = composeOverlay(frame, map, w, h, NORM);
    const snap = await renderSnapshot({ frame, map, width: w, height: h, normalization: NORM }, { format: 'png', maxBytes: 1e8 });
    const theirs = await sharp(snap!.data).removeAlpha().raw().toBuffer();
    let max = 0;
    let yellow = 0;
    for (let i = 0; i < ours.length; i++) max = Math.max(max, Math.abs(ours[i] - theirs[i]));
    for (let i = 0; i < w * h; i++) if (ours[i * 3] === 255 && ours[i * 3 + 1] === 230) yellow++;
    assert.ok(max <= 1, `largest difference ${max}`);
    assert.ok(yellow > 50, `outline pixels ${yellow}`);
  });
});

describe('console: NG review and false reject', () => {
  let s: Setup;
  before(async () => (s = await setup({ ngHistory: 3 })));
  after(async () => s.close());

  it('keeps only the last N NG frames, serves their overlays, saves a false reject as PNG + JSON once', async () => {
    for (let seq = 1; seq <= 8; seq++) s.parts.hub.onResult(result('cam-1', seq, seq % 2 === 0));
    const list = (await (await fetch(`${s.base}/api/cameras/cam-1/ng`)).json()) as { kept: number; items: Array<Record<string, any>> };
    assert.equal(list.kept, 3);
    assert.deepEqual(list.items.map((i) => i.seq), [8, 6, 4], 'newest first, bounded');
    const id = list.items[0].id as number;
    const img = await fetch(`${s.base}/api/cameras/cam-1/ng/${id}.jpg`);
    assert.equal(img.status, 200);
    assert.equal((await sharp(Buffer.from(await img.arrayBuffer())).metadata()).format, 'jpeg');

    // control requests: JSON only, no unknown fields, no cross-site origin
    const url = `${s.base}/api/cameras/cam-1/ng/${id}/false-reject`;
    const form = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'a=1' });
    assert.equal(form.status, 415);
    assert.equal((await post(url, '{not json')).status, 400);
    const extra = await post(url, { path: '/etc' });
    assert.equal(extra.status, 400);
    assert.match(await errorOf(extra), /unknown field\(s\) path/);
    assert.equal((await post(url, {}, { origin: 'http://evil.example' })).status, 403);
    assert.equal((await post(url, 'x'.repeat(5000))).status, 413);

    const ok = (await (await post(url)).json()) as { savedTo: string; already: boolean };
    assert.equal(ok.already, false);
    assert.ok(ok.savedTo.startsWith(join(s.dir, 'review', 'cam-1', 'false-reject')));
    const meta = await sharp(ok.savedTo).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ['png', W, H]);
    const sidecar = JSON.parse(readFileSync(ok.savedTo.replace(/\.png$/, '.json'), 'utf8')) as Record<string, any>;
    assert.equal(sidecar.seq, 8);
    assert.equal(sidecar.review, 'false-reject');
    const again = (await (await post(url)).json()) as { savedTo: string; already: boolean };
    assert.deepEqual(again, { savedTo: ok.savedTo, already: true });
    const listed = (await (await fetch(`${s.base}/api/cameras/cam-1/ng`)).json()) as { items: Array<Record<string, any>> };
    assert.equal(listed.items[0].savedTo, ok.savedTo);
  });

  it('holds no frame for the live view while nobody watches', () => {
    const h = new CameraHistory('c', 2, 10);
    h.record(result('c', 1, false), () => 1, 1000);
    assert.equal(h.latest as unknown, null);
    h.watch(1000);
    h.record(result('c', 2, false), () => 2, 2000);
    assert.equal(h.latest?.seq, 2);
    h.record(result('c', 3, false), () => 3, 1000 + 5000 + 1); // watch grace over
    assert.equal(h.latest, null);
    assert.equal(h.ng.length, 0);
  });
});

describe('console: capture good parts', () => {
  let s: Setup;
  before(async () => (s = await setup({ maxImages: 4 })));
  after(async () => s.close());

  it('writes every Nth frame into <root>/<camera>/train/good as PNG up to the image cap', async () => {
    const cap = join(s.dir, 'captures', 'cam-1', 'train', 'good');
    for (const [body, why] of [
      [{ everyN: 0 }, /everyN: must be between 1/],
      [{ everyN: 1.5 }, /everyN: must be an integer/],
      [{ maxImages: 5 }, /maxImages: must be between 1 and 4/],
      [{ maxBytes: 'lots' }, /maxBytes: must be an integer/],
      [{ root: '/etc' }, /unknown field\(s\) root/],
    ] as const) {
      const r = await post(`${s.base}/api/cameras/cam-1/capture/start`, body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.match(await errorOf(r), why);
    }
    const r = await post(`${s.base}/api/cameras/cam-1/capture/start`, { everyN: 2 });
    assert.equal(r.status, 200);
    const st = (await r.json()) as Record<string, any>;
    assert.equal(st.state, 'running');
    assert.equal(st.dir, cap);
    assert.equal((await post(`${s.base}/api/cameras/cam-1/capture/start`)).status, 409);
    const done = await feedUntilStopped(s, 'cam-1');
    assert.equal(done.state, 'done');
    assert.equal(done.written, 4);
    assert.match(done.reason, /image cap reached/);
    const files = readdirSync(cap).filter((f) => f.endsWith('.png'));
    assert.equal(files.length, 4);
    const seqs = files.map((f) => Number(/-(\d+)\.png$/.exec(f)?.[1])).sort((a, b) => a - b);
    assert.ok(seqs.every((q) => q % 2 === 0), `every 2nd frame: ${seqs}`);
    for (const f of files) {
      const m = await sharp(join(cap, f)).metadata();
      assert.deepEqual([m.format, m.width, m.height, m.channels], ['png', W, H, 3]);
    }
    // GET status and an idempotent stop
    assert.equal(((await (await fetch(`${s.base}/api/cameras/cam-1/capture`)).json()) as any).written, 4);
    assert.equal((await post(`${s.base}/api/cameras/cam-1/capture/stop`)).status, 200);
  });

  it('stops at the byte cap', async () => {
    const s2 = await setup({ maxBytes: 20000 });
    try {
      assert.equal((await post(`${s2.base}/api/cameras/cam-1/capture/start`)).status, 200);
      const done = await feedUntilStopped(s2, 'cam-1');
      assert.equal(done.state, 'done');
      assert.match(done.reason, /byte cap reached/);
      assert.ok(done.bytes <= 20000 && done.written >= 1);
    } finally {
      await s2.close();
    }
  });

  it('a file in the way of the dataset root: 507 naming it', async () => {
    const blocker = join(s.dir, 'not-a-folder');
    writeFileSync(blocker, 'x');
    const s2 = await setup({ root: join(blocker, 'captures') });
    try {
      const r = await post(`${s2.base}/api/cameras/cam-1/capture/start`);
      assert.equal(r.status, 507);
      assert.match(await errorOf(r), /not a folder: .*not-a-folder/);
    } finally {
      await s2.close();
    }
  });

  it('disk full (64 KiB tmpfs): capture stops with "disk full", no partial file, the hub keeps taking frames', async (t) => {
    const why = canMount();
    if (why) return t.skip(`SKIPPED: needs root to mount a size-limited tmpfs (${why})`);
    const mnt = mkdtempSync(join(tmpdir(), 'etstpm-full-'));
    assert.equal(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mnt]).status, 0);
    const s2 = await setup({ root: mnt, maxImages: 10 });
    try {
      // minFreeBytes above the mount's size: refused up front
      const s3 = await setup({ root: mnt, minFreeBytes: 1 << 20 });
      const refused = await post(`${s3.base}/api/cameras/cam-1/capture/start`);
      assert.equal(refused.status, 507);
      assert.match(await errorOf(refused), /disk full: \d+ bytes free/);
      await s3.close();
      // frames of random noise do not compress: a few fit, then ENOSPC
      assert.equal((await post(`${s2.base}/api/cameras/cam-1/capture/start`)).status, 200);
      let done: Record<string, any> | null = null;
      for (let seq = 1; seq <= 200 && !done; seq++) {
        const r = result('cam-1', seq, false);
        for (let i = 0; i < r.frame.length; i++) r.frame[i] = (Math.random() * 256) | 0;
        s2.parts.hub.onResult(r);
        await new Promise((res) => setTimeout(res, 5));
        const st = s2.parts.hub.captureStatus('cam-1');
        if (st.state !== 'running') done = st as unknown as Record<string, any>;
      }
      assert.ok(done, 'capture stopped');
      assert.equal(done.state, 'error');
      assert.match(done.reason, /disk full.*ENOSPC/);
      const dir = join(mnt, 'cam-1', 'train', 'good');
      const files = readdirSync(dir);
      assert.equal(files.length, done.written, 'no partial file left behind');
      for (const f of files) assert.equal((await sharp(join(dir, f)).metadata()).width, W);
      assert.ok(s2.logs.messages().includes('capture stopped by an error'));
      // frames keep flowing into the console after the error
      s2.parts.hub.onResult(result('cam-1', 999, true));
      assert.equal(s2.parts.hub.ngList('cam-1')[0].seq, 999);
    } finally {
      await s2.close();
      spawnSync('umount', [mnt]);
      rmSync(mnt, { recursive: true, force: true });
    }
  });

  it('read-only file system: start refused with 507 "read-only"', async (t) => {
    const why = canMount();
    if (why) return t.skip(`SKIPPED: needs root to mount a read-only tmpfs (${why})`);
    const mnt = mkdtempSync(join(tmpdir(), 'etstpm-ro-'));
    assert.equal(spawnSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=64k', 'tmpfs', mnt]).status, 0);
    const s2 = await setup({ root: mnt, reviewDir: join(mnt, 'review') });
    try {
      const r = await post(`${s2.base}/api/cameras/cam-1/capture/start`);
      assert.equal(r.status, 507);
      assert.match(await errorOf(r), /read-only file system.*EROFS/);
      assert.equal(s2.parts.hub.captureStatus('cam-1').state, 'idle');
      // false reject into a read-only review folder: a 507 with the reason, not a crash
      s2.parts.hub.onResult(result('cam-1', 1, true));
      const id = s2.parts.hub.ngList('cam-1')[0].id as number;
      const fr = await post(`${s2.base}/api/cameras/cam-1/ng/${id}/false-reject`);
      assert.equal(fr.status, 507);
      assert.match(await errorOf(fr), /false reject not saved: read-only file system/);
      assert.equal((await fetch(`${s2.base}/api/state`)).status, 200);
    } finally {
      await s2.close();
      spawnSync('umount', [mnt]);
      rmSync(mnt, { recursive: true, force: true });
    }
  });
});

describe('console: who may control', () => {
  it('beyond loopback without a token: read-only (GET works, POST 403)', async () => {
    const s = await setup({ host: '0.0.0.0' });
    try {
      assert.equal((await fetch(`${s.base}/api/state`)).status, 200);
      assert.equal(((await (await fetch(`${s.base}/api/state`)).json()) as any).control, 'read-only');
      const r = await post(`${s.base}/api/cameras/cam-1/capture/start`);
      assert.equal(r.status, 403);
      assert.match(await errorOf(r), /read-only.*console\.token/);
    } finally {
      await s.close();
    }
  });

  it('with a token: control needs "Bearer <token>"; the token is in no page, response or log line', async () => {
    const token = 'S3cret-console-token-42';
    const s = await setup({ host: '0.0.0.0', token });
    try {
      const url = `${s.base}/api/cameras/cam-1/capture/start`;
      const none = await post(url);
      assert.equal(none.status, 401);
      assert.match(await errorOf(none), /Authorization: Bearer/);
      const wrong = await post(url, {}, { authorization: 'Bearer nope' });
      assert.equal(wrong.status, 401);
      assert.doesNotMatch(await errorOf(wrong), /nope/);
      assert.equal((await post(url, {}, { authorization: `Bearer ${token}` })).status, 200);
      assert.equal((await post(`${s.base}/api/cameras/cam-1/capture/stop`, {}, { authorization: `bearer ${token}` })).status, 200);
      let seen = '';
      for (const p of ['/', '/assets/app.js', '/api/state', '/api/cameras/cam-1/capture', '/api/cameras/cam-1/ng']) seen += await (await fetch(`${s.base}${p}`)).text();
      assert.ok(!seen.includes(token), 'token in a response');
      assert.equal(((await (await fetch(`${s.base}/api/state`)).json()) as any).control, 'token');
      assert.ok(!JSON.stringify(s.logs.lines).includes(token), 'token in the log');
    } finally {
      await s.close();
    }
  });
});

describe('console: MQTT command topic', () => {
  it('capture-start/-status/-stop over P/<camera>/command, answered on .../command/reply; bad commands get a reason', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'etstpm-console-mqtt-'));
    const logs = captureLog('warn');
    const broker = await startEmbeddedBroker('127.0.0.1', 0, logs.log);
    const daemonClient = mqtt.connect(broker.url, { protocolVersion: 4 });
    const operator = mqtt.connect(broker.url, { protocolVersion: 4 });
    const parts = createConsole({
      options: {
        enabled: true, token: '', ngHistory: 2, trendSeconds: 10, reviewDir: join(dir, 'review'), mqttCommands: true,
        capture: { root: join(dir, 'captures'), everyN: 1, maxImages: 3, maxBytes: 1e7, minFreeBytes: 0 },
      },
      host: '127.0.0.1',
      topicPrefix: 'plant/line1',
      model: { name: 'm', version: 'v', method: 'stpm', thresholdMethod: null, finetune: null, width: W, height: H, normalization: NORM },
      sources: { health: () => ({ ok: true }), cameras: () => [{ camera: 'cam-1', state: 'streaming', fps: 1, captured: 0, processed: 0, dropped: 0, ng: 0, provider: 'cpu', model: { name: 'm', version: 'v' }, since: 0 }] },
      mqtt: daemonClient,
      log: logs.log,
    });
    const replies: Array<Record<string, any>> = [];
    try {
      await until(() => daemonClient.connected && operator.connected, 10000, 'both MQTT clients connected');
      operator.on('message', (topic, payload) => replies.push({ topic, ...(JSON.parse(payload.toString()) as object) }));
      await operator.subscribeAsync('plant/line1/+/command/reply', { qos: 1 });
      // The console subscribes when its client connects: ask for the status until the subscription answers.
      for (let i = 0; i < 50 && replies.length === 0; i++) {
        await operator.publishAsync('plant/line1/cam-1/command', '{"action":"capture-status"}', { qos: 1 });
        await new Promise((res) => setTimeout(res, 200));
      }
      await until(() => replies.length >= 1, 5000, 'a reply to capture-status');
      assert.equal(replies[0].capture.state, 'idle');
      await new Promise((res) => setTimeout(res, 300));
      replies.length = 0;
      const send = async (cam: string, payload: string, n: number) => {
        await operator.publishAsync(`plant/line1/${cam}/command`, payload, { qos: 1 });
        await until(() => replies.length >= n, 10000, `reply ${n}`);
        return replies[n - 1];
      };
      let r = await send('cam-1', JSON.stringify({ action: 'capture-start', everyN: 1, maxImages: 2 }), 1);
      assert.equal(r.topic, 'plant/line1/cam-1/command/reply');
      assert.equal(r.ok, true);
      assert.equal(r.capture.state, 'running');
      for (let seq = 1; seq <= 50 && parts.hub.captureStatus('cam-1').state === 'running'; seq++) {
        parts.hub.onResult(result('cam-1', seq, false));
        await new Promise((res) => setTimeout(res, 5));
      }
      r = await send('cam-1', JSON.stringify({ action: 'capture-status' }), 2);
      assert.equal(r.capture.written, 2);
      assert.equal(readdirSync(join(dir, 'captures', 'cam-1', 'train', 'good')).length, 2);
      r = await send('cam-1', 'not json', 3);
      assert.equal(r.ok, false);
      assert.match(r.error, /not JSON/);
      r = await send('cam-1', JSON.stringify({ action: 'reboot' }), 4);
      assert.match(r.error, /unknown action "reboot"/);
      r = await send('nope', JSON.stringify({ action: 'capture-stop' }), 5);
      assert.equal(r.topic, 'plant/line1/nope/command/reply');
      assert.match(r.error, /unknown camera "nope"/);
      r = await send('cam-1', JSON.stringify({ action: 'capture-start', maxImages: 99 }), 6);
      assert.match(r.error, /maxImages: must be between 1 and 3/);
    } finally {
      await parts.close();
      await operator.endAsync();
      await daemonClient.endAsync();
      await broker.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** An HTTP request with exactly these headers (fetch would set Host and Origin itself). */
function rawRequest(port: number, o: { method?: string; path: string; headers?: Record<string, string>; body?: string; setHost?: boolean }): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: o.method ?? 'GET', path: o.path, headers: o.headers ?? {}, setHost: o.setHost ?? !o.headers?.host }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end(o.body);
  });
}

describe('console: Host and Origin checks (DNS rebinding)', () => {
  it('answers only to the address and port it listens on (and loopback names), 421 with the reason otherwise', async () => {
    const s = await setup();
    try {
      const port = s.http.port;
      for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `LOCALHOST:${port}`, `[::1]:${port}`]) {
        assert.equal((await rawRequest(port, { path: '/api/state', headers: { host } })).status, 200, host);
      }
      for (const host of [`attacker.example:${port}`, `127.0.0.1:${port + 1}`, '127.0.0.1', `localhost.attacker.example:${port}`, `192.168.1.5:${port}`, 'bad host']) {
        for (const path of ['/', '/assets/app.js', '/api/state', '/api/cameras/cam-1/ng']) {
          const r = await rawRequest(port, { path, headers: { host } });
          assert.equal(r.status, 421, `${host} ${path}`);
          if (path.startsWith('/api')) assert.match((JSON.parse(r.body) as { error: string }).error, /is not an address of this console.*console\.allowedHosts/);
        }
      }
      // No Host at all: node's HTTP/1.1 parser answers 400 before the console sees it (requireHostHeader).
      assert.ok([400, 421].includes((await rawRequest(port, { path: '/api/state', setHost: false })).status), 'no Host header');
      // The rebinding attack itself: the page's own name as Host, its own origin; no capture starts.
      const attack = await rawRequest(port, { method: 'POST', path: '/api/cameras/cam-1/capture/start',
        headers: { host: `attacker.example:${port}`, origin: `http://attacker.example:${port}`, 'content-type': 'application/json' }, body: '{}' });
      assert.equal(attack.status, 421);
      assert.equal(s.parts.hub.captureStatus('cam-1').state, 'idle');
      // /healthz and /metrics are not the console's: probes may send any Host.
      assert.equal((await rawRequest(port, { path: '/healthz', headers: { host: 'probe.invalid' } })).status, 200);
      // Refusals are logged, rate-limited (a hostile page can repeat them as fast as it likes).
      const refused = s.logs.lines.filter((l) => l.msg === 'console request refused');
      assert.ok(refused.length >= 1 && refused.length <= 2, `refusal log lines: ${refused.length}`);
    } finally {
      await s.close();
    }
  });

  it('console.allowedHosts adds names ("name" = any port, "name:port" = that port)', async () => {
    const s = await setup({ host: '0.0.0.0', allowedHosts: ['console.plant.example', 'proxy.plant.example:8443'] });
    try {
      const port = s.http.port;
      const status = async (host: string): Promise<number> => (await rawRequest(port, { path: '/api/state', headers: { host } })).status;
      assert.equal(await status(`console.plant.example:${port}`), 200);
      assert.equal(await status('console.plant.example'), 200);
      assert.equal(await status('Console.Plant.Example.:80'), 200);
      assert.equal(await status('proxy.plant.example:8443'), 200);
      assert.equal(await status('proxy.plant.example:8444'), 421);
      assert.equal(await status(`evil.plant.example:${port}`), 421);
      assert.equal(await status(`127.0.0.1:${port}`), 200, 'the address the connection arrived at');
    } finally {
      await s.close();
    }
  });

  it('state-changing requests with a foreign Origin are refused (403), same-console origins and no Origin are not', async () => {
    const s = await setup();
    try {
      const port = s.http.port;
      const start = (origin?: string) => rawRequest(port, { method: 'POST', path: '/api/cameras/cam-1/capture/start',
        headers: { 'content-type': 'application/json', ...(origin === undefined ? {} : { origin }) }, body: '{"maxImages": 1}' });
      const stop = () => rawRequest(port, { method: 'POST', path: '/api/cameras/cam-1/capture/stop', headers: { 'content-type': 'application/json' }, body: '{}' });
      for (const origin of ['http://attacker.example', `http://attacker.example:${port}`, 'null', `http://127.0.0.1:${port + 1}`, 'file://']) {
        const r = await start(origin);
        assert.equal(r.status, 403, origin);
        assert.match((JSON.parse(r.body) as { error: string }).error, /cross-origin control request refused/, origin);
        assert.equal(s.parts.hub.captureStatus('cam-1').state, 'idle', origin);
      }
      for (const origin of [`http://127.0.0.1:${port}`, `http://localhost:${port}`, undefined]) {
        assert.equal((await start(origin)).status, 200, String(origin));
        assert.equal((await stop()).status, 200);
      }
    } finally {
      await s.close();
    }
  });
});

describe('console: MQTT commands under the HTTP control policy', () => {
  async function mqttConsole(o: { host: string; token: string }) {
    const dir = mkdtempSync(join(tmpdir(), 'etstpm-console-mqtt-auth-'));
    const logs = captureLog('debug');
    const broker = await startEmbeddedBroker('127.0.0.1', 0, logs.log);
    const daemonClient = mqtt.connect(broker.url, { protocolVersion: 4 });
    const operator = mqtt.connect(broker.url, { protocolVersion: 4 });
    const parts = createConsole({
      options: {
        enabled: true, token: o.token, ngHistory: 2, trendSeconds: 10, reviewDir: join(dir, 'review'), mqttCommands: true,
        capture: { root: join(dir, 'captures'), everyN: 1, maxImages: 3, maxBytes: 1e7, minFreeBytes: 0 },
      },
      host: o.host,
      topicPrefix: 'p',
      model: { name: 'm', version: 'v', method: 'stpm', thresholdMethod: null, finetune: null, width: W, height: H, normalization: NORM },
      sources: { health: () => ({ ok: true }), cameras: () => [{ camera: 'cam-1', state: 'streaming', fps: 1, captured: 0, processed: 0, dropped: 0, ng: 0, provider: 'cpu', model: { name: 'm', version: 'v' }, since: 0 }] },
      mqtt: daemonClient,
      log: logs.log,
    });
    const replies: Array<Record<string, any>> = [];
    await until(() => daemonClient.connected && operator.connected, 10000, 'both MQTT clients connected');
    operator.on('message', (_topic, payload) => replies.push(JSON.parse(payload.toString()) as Record<string, any>));
    await operator.subscribeAsync('p/+/command/reply', { qos: 1 });
    for (let i = 0; i < 50 && replies.length === 0; i++) {
      await operator.publishAsync('p/cam-1/command', '{"action":"capture-status"}', { qos: 1 });
      await new Promise((res) => setTimeout(res, 200));
    }
    await until(() => replies.length >= 1, 5000, 'the command subscription');
    await new Promise((res) => setTimeout(res, 300));
    replies.length = 0;
    const send = async (payload: Record<string, unknown>): Promise<Record<string, any>> => {
      const n = replies.length + 1;
      await operator.publishAsync('p/cam-1/command', JSON.stringify(payload), { qos: 1 });
      await until(() => replies.length >= n, 10000, `reply ${n}`);
      return replies[n - 1];
    };
    return {
      parts, logs, send,
      close: async () => {
        await parts.close();
        await operator.endAsync();
        await daemonClient.endAsync();
        await broker.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }

  it('token mode: control commands need "token" (constant-time compared), reads do not; refusals published and logged without the token', async () => {
    const token = 'Mqtt-console-T0ken-77';
    const c = await mqttConsole({ host: '0.0.0.0', token });
    try {
      let r = await c.send({ action: 'capture-start', maxImages: 1 });
      assert.equal(r.ok, false);
      assert.match(r.error, /MQTT control refused: control commands need "token"/);
      r = await c.send({ action: 'capture-start', maxImages: 1, token: 'guess' });
      assert.equal(r.ok, false);
      assert.match(r.error, /MQTT control refused: wrong console token/);
      assert.doesNotMatch(r.error, /guess/);
      r = await c.send({ action: 'capture-start', maxImages: 1, token: 42 });
      assert.match(r.error, /"token" must be a string/);
      // A command the console does not know is still control: refused before it is even looked at.
      r = await c.send({ action: 'reboot' });
      assert.match(r.error, /MQTT control refused/);
      assert.equal(c.parts.hub.captureStatus('cam-1').state, 'idle');
      r = await c.send({ action: 'capture-status' });
      assert.equal(r.ok, true);
      r = await c.send({ action: 'capture-start', maxImages: 1, token });
      assert.equal(r.ok, true, r.error);
      assert.equal(r.capture.state, 'running');
      r = await c.send({ action: 'capture-stop', token });
      assert.equal(r.ok, true);
      const refused = c.logs.lines.filter((l) => l.msg === 'MQTT command refused');
      assert.ok(refused.length >= 4, `refusals logged: ${refused.length}`);
      assert.ok(!JSON.stringify(c.logs.lines).includes(token), 'token in the log');
    } finally {
      await c.close();
    }
  });

  it('read-only (beyond loopback, no token): every control command refused, reads answered', async () => {
    const c = await mqttConsole({ host: '0.0.0.0', token: '' });
    try {
      for (const action of ['capture-start', 'capture-stop']) {
        const r = await c.send({ action, token: 'anything' });
        assert.equal(r.ok, false, action);
        assert.match(r.error, /MQTT control refused: console is read-only/);
      }
      assert.equal((await c.send({ action: 'capture-status' })).ok, true);
      assert.equal(c.parts.hub.captureStatus('cam-1').state, 'idle');
    } finally {
      await c.close();
    }
  });

  it('open (loopback, no token): control commands work as before, a stray "token" field is ignored', async () => {
    const c = await mqttConsole({ host: '127.0.0.1', token: '' });
    try {
      const r = await c.send({ action: 'capture-start', maxImages: 1, token: 'whatever' });
      assert.equal(r.ok, true, r.error);
      assert.equal((await c.send({ action: 'capture-stop' })).ok, true);
    } finally {
      await c.close();
    }
  });
});

describe('console: raw scores', () => {
  it('the live view carries the raw score and threshold; the NG list ranks by raw score with order=raw', async () => {
    const s = await setup({ ngHistory: 10 });
    try {
      await fetch(`${s.base}/api/cameras/cam-1/live.jpg`); // start watching
      const raws = [2.5, 7.25, 3.0, 12.0];
      raws.forEach((raw, i) => s.parts.hub.onResult({ ...result('cam-1', i + 1, true), score: 1, rawScore: raw }));
      const live = await fetch(`${s.base}/api/cameras/cam-1/live.jpg`);
      assert.equal(live.status, 200);
      assert.equal(live.headers.get('x-score'), '1.0000');
      assert.equal(live.headers.get('x-raw-score'), '12');
      assert.equal(live.headers.get('x-raw-threshold'), String(NORM.threshold));
      const newest = (await (await fetch(`${s.base}/api/cameras/cam-1/ng`)).json()) as { items: Array<{ rawScore: number; score: number; rawThreshold: number }> };
      assert.deepEqual(newest.items.map((i) => i.rawScore), [12, 3, 7.25, 2.5]);
      assert.ok(newest.items.every((i) => i.score === 1 && i.rawThreshold === NORM.threshold));
      const ranked = (await (await fetch(`${s.base}/api/cameras/cam-1/ng?order=raw`)).json()) as { order: string; items: Array<{ rawScore: number }> };
      assert.equal(ranked.order, 'raw');
      assert.deepEqual(ranked.items.map((i) => i.rawScore), [12, 7.25, 3, 2.5]);
      const bad = await fetch(`${s.base}/api/cameras/cam-1/ng?order=score`);
      assert.equal(bad.status, 400);
      assert.match(await errorOf(bad), /order must be "newest" or "raw"/);
    } finally {
      await s.close();
    }
  });
});
