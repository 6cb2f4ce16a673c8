import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CameraConfig } from '../../src/config/types';
import { ffmpegCommand, filterChain, jetsonGstCommand } from '../../src/sources/ffmpeg-args';
import { ffmpegMajor, parseFfmpegMajor, rtspTimeoutOption } from '../../src/sources/ffmpeg-version';
import { classifyUrl, parseSynthetic } from '../../src/sources/url';

const cam = (over: Partial<CameraConfig> = {}): CameraConfig => ({ id: 'c', url: 'rtsp://h/s', fps: 0, roi: null, transport: 'tcp', decoder: 'ffmpeg', ...over });
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
    assert.equal(after(cmd.args, '-vf'), 'crop=300:200:10:20,scale=256:256:flags=bilinear+accurate_rnd+full_chroma_int,fps=5');
    assert.deepEqual(cmd.args.slice(-5), ['-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1']);
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
});
