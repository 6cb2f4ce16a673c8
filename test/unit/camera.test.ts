import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import { CameraConfig } from '../../src/config/types';
import { Backoff } from '../../src/sources/backoff';
import { Camera, CameraState, IngestOptions } from '../../src/sources/camera';
import { ChangeDetector, Thumbnailer, thumbDistance } from '../../src/sources/frame-change';
import { captureLog, silentLog, until } from './helpers';

const ingest: IngestOptions = {
  stallTimeoutMs: 2000,
  connectTimeoutMs: 4000,
  reconnectMinMs: 100,
  reconnectMaxMs: 400,
  frozenTimeoutMs: 0,
  frozenTolerance: 0,
  ffmpegPath: 'ffmpeg',
  gstLaunchPath: 'gst-launch-1.0',
};

const cfg = (over: Partial<CameraConfig>): CameraConfig => ({ id: 'c', url: '', fps: 0, roi: null, transport: 'tcp', decoder: 'ffmpeg', model: null, ...over });

describe('Backoff', () => {
  it('doubles from min up to max and resets', () => {
    const b = new Backoff(500, 30000);
    assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 8].map(() => b.next()), [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]);
    b.reset();
    assert.equal(b.next(), 500);
  });
});

describe('ChangeDetector', () => {
  it('a frame equal to the previous distinct one is a repeat; the clock runs from the last change', () => {
    const c = new ChangeDetector();
    const a = Buffer.alloc(12, 1);
    const b = Buffer.alloc(12, 1);
    b[11] = 2; // differs in the last byte only
    assert.equal(c.unchangedFor(100), 0);
    assert.equal(c.check(a, 100), true);
    assert.equal(c.check(Buffer.from(a), 200), false);
    assert.equal(c.check(Buffer.from(a), 300), false);
    assert.equal(c.streak, 2);
    assert.equal(c.unchangedFor(350), 250);
    assert.equal(c.check(b, 400), true);
    assert.equal(c.streak, 0);
    assert.equal(c.unchangedFor(450), 50);
    assert.equal(c.check(a, 500), true, 'back to an older image is a change');
  });
});

describe('ChangeDetector with a tolerance (lossy streams: docs/daemon.md, "Frozen cameras")', () => {
  const W = 256;
  const grey = (v: number): Buffer => Buffer.alloc(W * W * 3, v);
  /** A copy of `f` with a w x h rectangle at (x, y) raised by `by` grey levels in every channel. */
  const patch = (f: Buffer, x: number, y: number, w: number, h: number, by: number): Buffer => {
    const o = Buffer.from(f);
    for (let r = y; r < y + h; r++) for (let c = x; c < x + w; c++) for (let k = 0; k < 3; k++) o[(r * W + c) * 3 + k] = Math.min(255, o[(r * W + c) * 3 + k] + by);
    return o;
  };
  /** Pixel noise of +-amp (a deterministic pattern), like a codec's quantisation error. */
  const noisy = (f: Buffer, amp: number, seed: number): Buffer => {
    const o = Buffer.from(f);
    let s = seed;
    for (let i = 0; i < o.length; i++) {
      s = (s * 1103515245 + 12345) >>> 0;
      o[i] = Math.max(0, Math.min(255, o[i] + ((s >>> 16) % (2 * amp + 1)) - amp));
    }
    return o;
  };

  it('thumbnail: 32x32 block means of (R + 2G + B) / 4; distance = largest block difference and the mean one', () => {
    const t = new Thumbnailer(W, W);
    assert.equal(t.side, 32);
    const a = t.of(Buffer.alloc(W * W * 3, 100));
    assert.ok(a.means.every((m) => m === 100));
    const rgb = Buffer.alloc(W * W * 3);
    for (let i = 0; i < rgb.length; i += 3) rgb.set([40, 80, 200], i);
    assert.ok(t.of(rgb).means.every((m) => m === (40 + 160 + 200) / 4));
    // One 8x8 block raised by 40: that block differs by 40, the mean difference is 40 / 1024.
    const b = t.of(patch(Buffer.alloc(W * W * 3, 100), 8, 16, 8, 8, 40));
    const d = thumbDistance(a, b);
    assert.equal(d.max, 40);
    assert.ok(Math.abs(d.mean - 40 / 1024) < 1e-9);
    assert.equal(new Thumbnailer(20, 10).side, 10, 'fewer blocks than 32 on a small frame');
    assert.throws(() => t.of(Buffer.alloc(10)), /frame of 10 bytes, expected 256x256x3/);
  });

  it('codec-like pixel noise is a repeat; a small local change (one part of the image) is not', () => {
    const c = new ChangeDetector(8, W, W);
    const base = noisy(grey(120), 0, 1);
    assert.equal(c.check(base, 1), true, 'first frame');
    for (let i = 0; i < 5; i++) assert.equal(c.check(noisy(base, 6, i + 2), 2 + i), false, `noise +-6 (frame ${i}) is the same image`);
    assert.equal(c.streak, 5);
    assert.ok(c.lastDistance < 8, `noise distance ${c.lastDistance}`);
    assert.equal(c.check(patch(base, 100, 100, 12, 12, 30), 10), true, 'a 12x12 px patch 30 grey levels brighter is a change');
    assert.equal(c.streak, 0);
    assert.equal(c.changedAt, 10);
  });

  it('compares with the last SCORED frame: a slow drift adds up to a change', () => {
    const c = new ChangeDetector(8, W, W);
    assert.equal(c.check(grey(100), 1), true);
    assert.equal(c.check(grey(103), 2), false, '+3');
    assert.equal(c.check(grey(106), 3), false, '+6 from the scored frame');
    assert.equal(c.check(grey(109), 4), true, '+9 from the scored frame: changed, though only +3 from the previous');
    assert.equal(c.check(grey(112), 5), false, '+3 from the new reference');
  });

  it('tolerance 0 keeps the byte-exact comparison; a negative one is refused', () => {
    const c = new ChangeDetector(0, W, W);
    assert.equal(c.check(grey(100), 1), true);
    assert.equal(c.check(noisy(grey(100), 1, 3), 2), true, 'any byte differing is a change');
    assert.throws(() => new ChangeDetector(-1, W, W), /frozen tolerance must be >= 0/);
  });
});

describe('Camera (real ffmpeg)', () => {
  it('image folder: crops the ROI, scales to the model size and delivers exact RGB frames', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'etstpm-cam-'));
    // Left half red, right half blue; the ROI takes the right half only.
    const img = Buffer.alloc(80 * 40 * 3);
    for (let y = 0; y < 40; y++) for (let x = 0; x < 80; x++) img.set(x < 40 ? [255, 0, 0] : [0, 0, 255], (y * 80 + x) * 3);
    await sharp(img, { raw: { width: 80, height: 40, channels: 3 } }).png().toFile(join(dir, 'a.png'));
    await sharp(img, { raw: { width: 80, height: 40, channels: 3 } }).png().toFile(join(dir, 'b.png'));
    writeFileSync(join(dir, 'notes.txt'), 'not an image');
    const cam = new Camera(cfg({ url: dir, fps: 10, roi: { x: 40, y: 0, width: 40, height: 40 } }), { width: 16, height: 16 }, ingest, silentLog());
    const frames: Buffer[] = [];
    const states: CameraState[] = [];
    cam.on('frame', (f) => frames.push(f));
    cam.on('state', (s) => states.push(s));
    cam.start();
    await until(() => frames.length >= 5, 8000, '5 frames');
    await cam.stop();
    assert.deepEqual(states.slice(0, 2), ['connecting', 'streaming']);
    assert.equal(states.at(-1), 'stopped');
    for (const f of frames) {
      assert.equal(f.length, 16 * 16 * 3);
      // Every pixel blue (within codec rounding): the red half was cropped away.
      let maxRed = 0;
      let minBlue = 255;
      for (let i = 0; i < f.length; i += 3) {
        maxRed = Math.max(maxRed, f[i]);
        minBlue = Math.min(minBlue, f[i + 2]);
      }
      assert.ok(maxRed < 16 && minBlue > 239, `ROI not applied: maxRed ${maxRed} minBlue ${minBlue}`);
    }
    assert.equal(cam.captured, frames.length);
  });

  it('synthetic camera takes the ffmpeg path and streams', async () => {
    const cam = new Camera(cfg({ url: 'synthetic://?fps=20&size=64' }), { width: 32, height: 32 }, ingest, silentLog());
    let n = 0;
    cam.on('frame', (f) => {
      assert.equal(f.length, 32 * 32 * 3);
      n++;
    });
    cam.start();
    await until(() => n >= 3, 8000, '3 synthetic frames');
    await cam.stop();
    assert.equal(cam.state, 'stopped');
  });

  it('unreachable RTSP camera: failed with the reason, then retries with backoff', async () => {
    const cam = new Camera(cfg({ url: 'rtsp://127.0.0.1:9/none' }), { width: 16, height: 16 }, ingest, silentLog());
    const states: Array<[CameraState, string | undefined]> = [];
    cam.on('state', (s, e) => states.push([s, e]));
    cam.start();
    await until(() => states.filter(([s]) => s === 'connecting').length >= 3, 10000, 'three connection attempts');
    await cam.stop();
    const failed = states.filter(([s]) => s === 'failed');
    assert.ok(failed.length >= 2);
    assert.ok(failed.every(([, e]) => typeof e === 'string' && e.length > 0), JSON.stringify(failed));
    assert.ok(cam.restarts >= 2);
  });

  it('a decoder that produces no frames is failed by the connect timeout, one that stops is stalled', async () => {
    // "ffmpeg" here is a script that runs but stays silent: the connect timeout must fire.
    const fake = join(mkdtempSync(join(tmpdir(), 'etstpm-fake-')), 'silent-ffmpeg');
    writeFileSync(fake, '#!/bin/sh\nexec sleep 30\n', { mode: 0o755 });
    const silent = new Camera(cfg({ url: 'rtsp://x/y' }), { width: 8, height: 8 }, { ...ingest, ffmpegPath: fake, connectTimeoutMs: 300 }, silentLog());
    const errs: string[] = [];
    silent.on('state', (s, e) => s === 'failed' && errs.push(e ?? ''));
    silent.start();
    await until(() => errs.length >= 1, 5000, 'connect timeout');
    await silent.stop();
    assert.match(errs[0], /no frame within 300 ms/);

    const stalling = new Camera(cfg({ url: 'synthetic://?fps=20&size=32' }), { width: 8, height: 8 }, { ...ingest, stallTimeoutMs: 300 }, silentLog());
    const seen: CameraState[] = [];
    stalling.on('state', (s) => seen.push(s));
    stalling.start();
    await until(() => seen.includes('streaming'), 8000, 'streaming');
    // Freeze the decoder: no more frames although the process lives.
    const proc = (stalling as unknown as { proc: { pid: number } }).proc;
    process.kill(proc.pid, 'SIGSTOP');
    await until(() => seen.includes('stalled'), 5000, 'stalled state');
    await until(() => seen.filter((s) => s === 'streaming').length >= 2, 10000, 'recovery after restart');
    await stalling.stop();
    try {
      process.kill(proc.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  });

  it('a stream whose size changes mid-stream keeps delivering model-size frames, and the change is logged', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'etstpm-resize-'));
    // One H.264 elementary stream: 320x240 for 1 s, then 640x480 (new SPS in band), as a camera reconfigured live.
    const parts = ['320x240', '640x480'].map((s, i) => {
      const f = join(dir, `${i}.h264`);
      const r = spawnSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', `testsrc2=size=${s}:rate=10:duration=1`,
        '-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-f', 'h264', '-y', f]);
      assert.equal(r.status, 0, String(r.stderr));
      return readFileSync(f);
    });
    const file = join(dir, 'both.h264');
    writeFileSync(file, Buffer.concat(parts));
    const cap = captureLog('info');
    const cam = new Camera(cfg({ url: file }), { width: 16, height: 16 }, ingest, cap.log);
    let n = 0;
    cam.on('frame', (f) => {
      assert.equal(f.length, 16 * 16 * 3);
      n++;
    });
    cam.start();
    await until(() => cap.messages().some((m) => m.includes('source stream changed from h264 320x240 to h264 640x480')), 15000, 'the change logged');
    await until(() => n >= 15, 15000, 'frames after the change');
    await cam.stop();
    assert.ok(cap.messages().includes('camera c: source stream h264 320x240'), cap.messages().join('\n'));
  });

  it('a camera with an unusable URL fails alone without throwing', () => {
    const cam = new Camera(cfg({ url: 'synthetic://?defectRate=7' }), { width: 8, height: 8 }, ingest, silentLog());
    cam.start();
    assert.equal(cam.state, 'failed');
    assert.match(cam.error ?? '', /defectRate=7/);
  });
});
