import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { describe, it } from 'node:test';
import { CameraConfig } from '../../src/config/types';
import { InputFormatReader, parseDecoderLine } from '../../src/sources/decoder-log';
import { ffmpegCommand, ffmpegLogLevel, filterChain, fpsCap, jetsonGstCommand } from '../../src/sources/ffmpeg-args';
import { ffmpegMajor, ffmpegVersion, fpsModeOption, parseFfmpegMajor, parseFfmpegVersion, rtspTimeoutOption } from '../../src/sources/ffmpeg-version';
import { classifyUrl, parseSynthetic } from '../../src/sources/url';

const cam = (over: Partial<CameraConfig> = {}): CameraConfig => ({ id: 'c', url: 'rtsp://h/s', fps: 0, roi: null, transport: 'tcp', decoder: 'ffmpeg', model: null, ...over });
const size = { width: 256, height: 256 };

function after(args: string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
}

describe('decoder command lines', () => {
  it('rtsp: TCP transport, socket timeout in microseconds, crop then scale, raw rgb24 on stdout', () => {
    const c = cam({ roi: { x: 10, y: 20, width: 300, height: 200 }, fps: 5 });
    const cmd = ffmpegCommand('ffmpeg', c, classifyUrl(c.url), size, { connectTimeoutMs: 10000 });
    assert.equal(cmd.command, 'ffmpeg');
    assert.equal(after(cmd.args, '-rtsp_transport'), 'tcp');
    assert.equal(after(cmd.args, '-timeout'), '10000000');
    assert.ok(cmd.args.indexOf('-timeout') < cmd.args.indexOf('-i'), 'input options must come before -i');
    assert.equal(after(cmd.args, '-i'), 'rtsp://h/s');
    assert.equal(after(cmd.args, '-vf'), `crop=300:200:10:20,scale=256:256:flags=bilinear+accurate_rnd+full_chroma_int,${fpsCap(5)}`);
    assert.deepEqual(cmd.args.slice(-7), ['-fps_mode', 'passthrough', '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1']);
    assert.ok(cmd.args.includes('-nostdin'));
    assert.equal(after(cmd.args, '-analyzeduration'), '500000');
    assert.ok(cmd.args.indexOf('-probesize') < cmd.args.indexOf('-i'), 'probe limits are input options');
    const udp = ffmpegCommand('ffmpeg', cam({ transport: 'udp' }), classifyUrl('rtsp://h/s'), size, { connectTimeoutMs: 1 });
    assert.equal(after(udp.args, '-rtsp_transport'), 'udp');
  });

  it('RTSP socket timeout option follows the ffmpeg version (4.x: -stimeout, 5+: -timeout)', () => {
    assert.equal(parseFfmpegMajor('ffmpeg version 4.4.2-0ubuntu0.22.04.1 Copyright (c) 2000-2021'), 4);
    assert.equal(parseFfmpegMajor('ffmpeg version 5.1.9-0+deb12u1 Copyright'), 5);
    assert.equal(parseFfmpegMajor('ffmpeg version n6.1.1 Copyright'), 6);
    assert.equal(parseFfmpegMajor('ffmpeg version N-112345-gabcdef Copyright'), null);
    assert.equal(rtspTimeoutOption(4), '-stimeout');
    assert.equal(rtspTimeoutOption(5), '-timeout');
    assert.equal(rtspTimeoutOption(null), '-timeout');
    const old = ffmpegCommand('ffmpeg', cam(), classifyUrl('rtsp://h/s'), size, { connectTimeoutMs: 3000, rtspTimeoutOption: '-stimeout' });
    assert.equal(after(old.args, '-stimeout'), '3000000');
    assert.ok(!old.args.includes('-timeout'));
    // The installed ffmpeg answers (Debian 12: 5.1).
    assert.ok((ffmpegMajor('ffmpeg') ?? 0) >= 4);
  });

  it('filter chain without ROI or fps cap is only the scale', () => {
    assert.equal(filterChain(null, { width: 64, height: 32 }, 0), 'scale=64:32:flags=bilinear+accurate_rnd+full_chroma_int');
  });

  it('video files loop in real time; synthetic frames enter through stdin as raw video', () => {
    const file = ffmpegCommand('ffmpeg', cam({ url: '/videos/line.mp4' }), classifyUrl('/nonexistent/line.mp4'), size, { connectTimeoutMs: 1 });
    assert.equal(after(file.args, '-stream_loop'), '-1');
    assert.ok(file.args.includes('-re'));
    const syn = ffmpegCommand('ffmpeg', cam({ url: 'synthetic://?fps=7&size=128' }), classifyUrl('synthetic://?fps=7&size=128'), size, { connectTimeoutMs: 1 });
    assert.equal(syn.stdin, 'pipe');
    assert.equal(after(syn.args, '-i'), 'pipe:0');
    assert.equal(after(syn.args, '-video_size'), '128x128');
    assert.equal(after(syn.args, '-framerate'), '7');
    assert.equal(after(syn.args, '-vf'), filterChain(null, size, 0), 'synthetic frames must take the same scale stage');
  });

  it('synthetic:// parameters are parsed and checked', () => {
    assert.deepEqual(parseSynthetic('synthetic://'), { defectRate: 0.1, fps: 5, seed: 1, size: 256 });
    assert.deepEqual(parseSynthetic('synthetic://?defectRate=0.5&fps=2&seed=9&size=64'), { defectRate: 0.5, fps: 2, seed: 9, size: 64 });
    assert.throws(() => parseSynthetic('synthetic://?defectRate=2'), /defectRate=2/);
    assert.throws(() => parseSynthetic('synthetic://?colour=red'), /colour is unknown/);
  });

  it('jetson-gst: nvv4l2decoder + nvvidconv crop/scale, RGB to fd 1, quiet gst-launch', () => {
    const c = cam({ decoder: 'jetson-gst', roi: { x: 8, y: 4, width: 640, height: 480 }, fps: 10 });
    const cmd = jetsonGstCommand('gst-launch-1.0', c, 'rtsp://cam/stream', size, { connectTimeoutMs: 5000 });
    assert.equal(cmd.command, 'gst-launch-1.0');
    assert.equal(cmd.args[0], '-q');
    const pipeline = cmd.args.join(' ');
    // The exact string of docs/deploy-jetson.md ("Hardware decode").
    assert.equal(
      pipeline,
      '-q -e rtspsrc location=rtsp://cam/stream protocols=tcp latency=200 tcp-timeout=5000000 drop-on-latency=true ' +
        '! application/x-rtp,media=video ! parsebin ! nvv4l2decoder ! nvvidconv left=8 top=4 right=648 bottom=484 ' +
        '! video/x-raw,format=RGBA,width=256,height=256 ! videorate drop-only=true ! video/x-raw,framerate=10000/1000 ' +
        '! videoconvert ! video/x-raw,format=RGB ! fdsink fd=1 sync=false',
    );
    const plain = jetsonGstCommand('gst-launch-1.0', cam({ decoder: 'jetson-gst', transport: 'udp' }), 'rtsp://c/s', size, { connectTimeoutMs: 1000 }).args.join(' ');
    assert.match(plain, /protocols=udp/);
    assert.match(plain, /nvvidconv ! video\/x-raw,format=RGBA,width=256,height=256 ! videoconvert/);
  });

  it('no invented frames: every source kind passes frames through (-fps_mode, or -vsync before ffmpeg 5.1)', () => {
    assert.deepEqual(parseFfmpegVersion('ffmpeg version 4.4.2-0ubuntu0.22.04.1 Copyright'), { major: 4, minor: 4 });
    assert.equal(fpsModeOption({ major: 4, minor: 4 }), '-vsync');
    assert.equal(fpsModeOption({ major: 5, minor: 0 }), '-vsync');
    assert.equal(fpsModeOption({ major: 5, minor: 1 }), '-fps_mode');
    assert.equal(fpsModeOption(null), '-fps_mode');
    assert.equal(ffmpegLogLevel({ major: 4, minor: 2 }), 'warning');
    assert.equal(ffmpegLogLevel({ major: 5, minor: 1 }), 'level+verbose');
    const urls = ['rtsp://h/s', 'synthetic://?fps=5', '/nonexistent/line.mp4', tmpdir()];
    for (const version of [null, { major: 4, minor: 4 }, { major: 6, minor: 1 }]) {
      for (const url of urls) {
        const c = cam({ url, fps: 3 });
        const args = ffmpegCommand('ffmpeg', c, classifyUrl(url), size, { connectTimeoutMs: 1000, version }).args;
        const opt = fpsModeOption(version);
        assert.equal(after(args, opt), 'passthrough', `${url} with ffmpeg ${JSON.stringify(version)}: ${args.join(' ')}`);
        assert.ok(args.indexOf(opt) > args.indexOf('-i'), 'an output option');
        assert.ok(!/(^|,)fps=/.test(after(args, '-vf') ?? ''), 'no fps filter (it duplicates frames when the source is slower)');
      }
    }
    // RTSP on ffmpeg 4.x also gets its socket timeout option from the version.
    const old = ffmpegCommand('ffmpeg', cam(), classifyUrl('rtsp://h/s'), size, { connectTimeoutMs: 2000, version: { major: 4, minor: 4 } });
    assert.equal(after(old.args, '-stimeout'), '2000000');
    // jetson-gst: no element that synthesises frames (videorate only with drop-only=true).
    for (const fps of [0, 10]) {
      const g = jetsonGstCommand('gst-launch-1.0', cam({ decoder: 'jetson-gst', fps }), 'rtsp://c/s', size, { connectTimeoutMs: 1000 }).args;
      g.forEach((a, i) => {
        if (a === 'videorate') assert.equal(g[i + 1], 'drop-only=true');
      });
      assert.equal(g.at(-1), 'sync=false');
    }
  });

  /** Runs the real ffmpeg on a lavfi test source with the daemon's output stage; returns the frames' md5 list. */
  function runReal(input: string[], fps: number, extraVersion = ffmpegVersion('ffmpeg')): string[] {
    const w = 32;
    const h = 32;
    const out = [...ffmpegCommand('ffmpeg', cam({ fps }), classifyUrl('rtsp://x/y'), { width: w, height: h }, { connectTimeoutMs: 1000, version: extraVersion }).args];
    // Keep the output stage (from -an on), replace the input.
    const stage = out.slice(out.indexOf('-an'));
    const r = spawnSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-nostdin', ...input, ...stage], { maxBuffer: 256 << 20, timeout: 60000 });
    assert.equal(r.status, 0, String(r.stderr));
    const buf = r.stdout as Buffer;
    const n = buf.length / (w * h * 3);
    assert.ok(Number.isInteger(n), 'whole frames');
    return Array.from({ length: n }, (_, i) => createHash('md5').update(buf.subarray(i * w * h * 3, (i + 1) * w * h * 3)).digest('hex'));
  }

  it('real ffmpeg: fps cap is drop-only (a slower source passes unchanged, a faster one is thinned), fps 0 passes all', () => {
    // testsrc2 draws a moving pattern and a frame counter: every frame differs.
    const slow = runReal(['-f', 'lavfi', '-i', 'testsrc2=size=64x64:rate=5:duration=4'], 10);
    assert.equal(slow.length, 20, 'a 5 fps source under a 10 fps cap: every frame once, none added');
    assert.equal(new Set(slow).size, 20, 'no duplicates');
    const fast = runReal(['-f', 'lavfi', '-i', 'testsrc2=size=64x64:rate=25:duration=4'], 5);
    assert.ok(fast.length >= 19 && fast.length <= 21, `25 fps thinned to 5 fps over 4 s: ${fast.length} frames`);
    assert.equal(new Set(fast).size, fast.length, 'no duplicates');
    const all = runReal(['-f', 'lavfi', '-i', 'testsrc2=size=64x64:rate=25:duration=2'], 0);
    assert.equal(all.length, 50);
    // A stream whose rate ffmpeg cannot know (timestamps 1 s apart, declared 600 fps): CFR would pad with copies.
    const gaps = runReal(['-f', 'lavfi', '-i', 'testsrc2=size=64x64:rate=1:duration=5,setpts=N/TB,settb=1/600', '-r', '600'], 0);
    assert.equal(gaps.length, new Set(gaps).size, `passthrough: no copies (${gaps.length} frames, ${new Set(gaps).size} distinct)`);
  });

  it('decoder log lines: level prefix parsed, input stream format read, output stream ignored', () => {
    assert.deepEqual(parseDecoderLine('[rtsp @ 0x55c8a32fcb00] [error] Connection refused'), { level: 'error', text: '[rtsp @ 0x55c8a32fcb00] Connection refused' });
    assert.deepEqual(parseDecoderLine('[warning] More than 1000 frames duplicated'), { level: 'warning', text: 'More than 1000 frames duplicated' });
    assert.deepEqual(parseDecoderLine('ERROR: from element /GstPipeline'), { level: 'warning', text: 'ERROR: from element /GstPipeline' });
    // ffmpeg prefixes only the first line of a message (e.g. the SDP dump): the rest continue it.
    assert.deepEqual(parseDecoderLine('a=ssrc:768628652 cname:user276758314@host', 'verbose'), { level: 'verbose', text: 'a=ssrc:768628652 cname:user276758314@host' });
    const r = new InputFormatReader();
    const lines = [
      "Input #0, rtsp, from 'rtsp://127.0.0.1:8554/cam':",
      '  Metadata:',
      '  Duration: N/A, bitrate: N/A',
      '  Stream #0:0: Video: h264 (Constrained Baseline), yuv420p(tv, smpte170m, progressive), 320x320 [SAR 1:1 DAR 1:1], 5 fps, 5 tbr, 90k tbn',
      "Output #0, rawvideo, to 'pipe:1':",
      '  Stream #0:0: Video: rawvideo (RGB[24] / 0x18424752), rgb24(pc), 64x64 [SAR 1:1 DAR 1:1], q=2-31',
    ];
    const found = lines.map((l) => r.feed(l)).filter((f) => f !== null);
    assert.deepEqual(found, [{ codec: 'h264', width: 320, height: 320 }]);
    // A size change mid-stream: ffmpeg reconfigures the filter graph and says so (verbose).
    assert.deepEqual(r.feed('[graph 0 input from stream 0:0 @ 0x5601b81850c0] w:640 h:480 pixfmt:yuv420p tb:1/1200000 fr:10/1 sar:1/1'),
      { codec: 'h264', width: 640, height: 480 });
    const raw = new InputFormatReader();
    raw.feed("Input #0, rtsp, from 'rtsp://h/cam':");
    assert.deepEqual(raw.feed('  Stream #0:0: Video: rawvideo (RGB[24] / 0x18424752), rgb24, 320x427, 5 tbr, 90k tbn'), { codec: 'rawvideo', width: 320, height: 427 });
  });
});
