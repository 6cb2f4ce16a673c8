/**
 * Command lines of the per-camera decoder processes. Every source ends in the same stage: crop to the region of
 * interest, scale to the model input, optional fps cap, raw RGB24 frames on stdout (H*W*3 bytes each).
 *
 * No invented frames: the output frame-rate mode is passthrough (`-fps_mode passthrough`, `-vsync passthrough` on
 * ffmpeg < 5.1). The rawvideo muxer has no timestamps, so ffmpeg's default for it is a constant frame rate, and
 * when it cannot estimate the input's rate (uncompressed RTSP frames larger than the probe, an unusual camera) it
 * guesses one (600 fps, 90000 fps) and duplicates every frame to meet it: the daemon then scores copies of one
 * old image as if they were new. The fps cap is drop-only for the same reason (ffmpeg's `fps` filter also
 * duplicates when the source is slower than the cap).
 */
import { readdirSync } from 'node:fs';
import { extname, join } from 'node:path';
import { CameraConfig, Roi } from '../config/types';
import { fpsModeOption, FfmpegVersion, rtspTimeoutOption } from './ffmpeg-version';
import { SourceKind } from './url';

export interface FrameSize {
  width: number;
  height: number;
}

export interface DecoderCommand {
  command: string;
  args: string[];
  /** The synthetic source writes raw frames into the decoder's stdin. */
  stdin: 'ignore' | 'pipe';
  /** Problems found while building the command that the operator should see (e.g. mixed image types). */
  notes: string[];
}

export interface IngestTimeouts {
  connectTimeoutMs: number;
  /** The installed ffmpeg's version (ffmpeg-version.ts) picks option names; null/absent = a current ffmpeg. */
  version?: FfmpegVersion | null;
  /** The RTSP socket timeout option; default: from `version`. */
  rtspTimeoutOption?: '-timeout' | '-stimeout';
}

const IMAGE_EXTS = ['.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff'];

/**
 * Drop-only fps cap: keeps a frame when it starts a new 1/fps time slot (or has no timestamp), never repeats one.
 * A source slower than the cap passes unchanged; a faster one is thinned to at most `fps` frames per second.
 */
export function fpsCap(fps: number): string {
  const f = Number(fps.toFixed(6));
  return `select='isnan(t)+isnan(prev_selected_t)+gte(floor(t*${f})-floor(prev_selected_t*${f}),1)'`;
}

/** crop -> scale -> fps cap: the same for every source, so the synthetic camera takes the real frame path. */
export function filterChain(roi: Roi | null, size: FrameSize, fps: number): string {
  const f: string[] = [];
  if (roi) f.push(`crop=${roi.width}:${roi.height}:${roi.x}:${roi.y}`);
  f.push(`scale=${size.width}:${size.height}:flags=bilinear+accurate_rnd+full_chroma_int`);
  if (fps > 0) f.push(fpsCap(fps));
  return f.join(',');
}

/**
 * ffmpeg's log level: `level+verbose` prefixes every line with its level, so the camera can log warnings and errors
 * as before and read the source format (the input stream description, an info line, and the filter graph's input
 * size, a verbose line printed again when the size changes mid-stream) without logging the rest. ffmpeg before
 * 4.4 is not known to have the `level` flag: warnings only there.
 */
export function ffmpegLogLevel(v: FfmpegVersion | null | undefined): string {
  return v && (v.major < 4 || (v.major === 4 && v.minor < 4)) ? 'warning' : 'level+verbose';
}

const OUTPUT = (filters: string, t: IngestTimeouts): string[] => [
  '-an',
  '-sn',
  '-dn',
  '-vf',
  filters,
  fpsModeOption(t.version ?? null),
  'passthrough',
  '-f',
  'rawvideo',
  '-pix_fmt',
  'rgb24',
  'pipe:1',
];

/** Picks the glob for an image directory: the most common image extension (ffmpeg's glob has no braces). */
export function imageGlob(dir: string): { pattern: string; notes: string[] } {
  const counts = new Map<string, number>();
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch {
    /* unreadable: ffmpeg reports it and the camera retries */
  }
  for (const n of names) {
    const e = extname(n).toLowerCase();
    if (IMAGE_EXTS.includes(e)) counts.set(extname(n), (counts.get(extname(n)) ?? 0) + 1);
  }
  const sorted = [...counts.entries()].sort((a, b) => b[1] - a[1]);
  const ext = sorted[0]?.[0] ?? '.png';
  const notes = sorted.slice(1).map(([e, n]) => `image folder ${dir}: ${n} ${e} file(s) ignored (only ${ext} files are played)`);
  // Escape glob metacharacters in the folder name itself.
  const escaped = dir.replace(/([*?[\]])/g, '\\$1');
  return { pattern: join(escaped, `*${ext}`), notes };
}

export function ffmpegCommand(
  ffmpeg: string,
  cam: CameraConfig,
  source: SourceKind,
  size: FrameSize,
  t: IngestTimeouts,
): DecoderCommand {
  const common = ['-hide_banner', '-loglevel', ffmpegLogLevel(t.version), '-nostats'];
  const filters = filterChain(cam.roi, size, cam.fps);
  switch (source.kind) {
    case 'rtsp':
      return {
        command: ffmpeg,
        args: [
          ...common,
          '-nostdin',
          '-rtsp_transport',
          cam.transport,
          // rtsp demuxer: socket I/O timeout in microseconds (also bounds the connect).
          t.rtspTimeoutOption ?? rtspTimeoutOption(t.version?.major ?? null),
          String(t.connectTimeoutMs * 1000),
          // ffmpeg's default stream probing holds the first frame back ~3 s; half a second finds an RTSP
          // camera's codec parameters (the SDP carries them) and makes a reconnect resume that much sooner.
          '-analyzeduration',
          '500000',
          '-probesize',
          '500000',
          '-fflags',
          'nobuffer',
          '-flags',
          'low_delay',
          '-i',
          source.url,
          ...OUTPUT(filters, t),
        ],
        stdin: 'ignore',
        notes: [],
      };
    case 'file':
      return {
        command: ffmpeg,
        args: [...common, '-nostdin', '-re', '-stream_loop', '-1', '-i', source.path, ...OUTPUT(filters, t)],
        stdin: 'ignore',
        notes: [],
      };
    case 'dir': {
      const { pattern, notes } = imageGlob(source.path);
      const rate = cam.fps > 0 ? cam.fps : 5;
      return {
        command: ffmpeg,
        args: [
          ...common,
          '-nostdin',
          '-re',
          '-framerate',
          String(rate),
          '-loop',
          '1',
          '-pattern_type',
          'glob',
          '-i',
          pattern,
          ...OUTPUT(filters, t),
        ],
        stdin: 'ignore',
        notes,
      };
    }
    case 'synthetic': {
      const p = source.params;
      return {
        command: ffmpeg,
        args: [
          ...common,
          '-f',
          'rawvideo',
          '-pix_fmt',
          'rgb24',
          '-video_size',
          `${p.size}x${p.size}`,
          '-framerate',
          String(p.fps),
          '-i',
          'pipe:0',
          ...OUTPUT(filters, t),
        ],
        stdin: 'pipe',
        notes: [],
      };
    }
  }
}

/**
 * Jetson hardware decode (decoder "jetson-gst"): the pipeline of docs/deploy-jetson.md. parsebin picks the
 * depayloader/parser for H.264 or H.265, NVDEC decodes (nvv4l2decoder), the VIC crops and scales (nvvidconv, into
 * system memory), the fps cap follows in system memory (a caps filter straight after the decoder cannot negotiate
 * NVMM), and RGBA -> RGB runs in videoconvert (nvvidconv has no packed RGB output). Needs L4T's GStreamer plugins;
 * it cannot run on a machine without them. No invented frames here either: nothing in the pipeline synthesises a
 * frame (videorate is drop-only, fdsink sync=false writes each decoded frame once, as it comes).
 */
export function jetsonGstCommand(gstLaunch: string, cam: CameraConfig, url: string, size: FrameSize, t: IngestTimeouts): DecoderCommand {
  const crop = cam.roi
    ? [`left=${cam.roi.x}`, `top=${cam.roi.y}`, `right=${cam.roi.x + cam.roi.width}`, `bottom=${cam.roi.y + cam.roi.height}`]
    : [];
  const rate = cam.fps > 0 ? ['!', 'videorate', 'drop-only=true', '!', `video/x-raw,framerate=${Math.round(cam.fps * 1000)}/1000`] : [];
  return {
    command: gstLaunch,
    args: [
      '-q', // gst-launch prints state changes on stdout otherwise, which would corrupt the frame stream
      '-e',
      'rtspsrc',
      `location=${url}`,
      `protocols=${cam.transport}`,
      'latency=200',
      `tcp-timeout=${t.connectTimeoutMs * 1000}`,
      'drop-on-latency=true',
      '!',
      'application/x-rtp,media=video',
      '!',
      'parsebin',
      '!',
      'nvv4l2decoder',
      '!',
      'nvvidconv',
      ...crop,
      '!',
      `video/x-raw,format=RGBA,width=${size.width},height=${size.height}`,
      ...rate,
      '!',
      'videoconvert',
      '!',
      'video/x-raw,format=RGB',
      '!',
      'fdsink',
      'fd=1',
      'sync=false',
    ],
    stdin: 'ignore',
    notes: [],
  };
}
