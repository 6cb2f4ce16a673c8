/**
 * Options whose name depends on the installed ffmpeg, asked once per ffmpeg path:
 * - the RTSP socket timeout: ffmpeg 4.x calls it `-stimeout` (µs) and uses `-timeout` for the *listen* timeout
 *   (which would turn the client into a server); ffmpeg 5+ calls it `-timeout` (µs);
 * - the output frame-rate mode: `-fps_mode` exists from 5.1 on; 4.x/5.0 only know `-vsync` (deprecated, but still
 *   accepted, from 5.1 on).
 * Ubuntu 22.04 (the Jetson image) ships 4.4, Debian 12 ships 5.1.
 */
import { spawnSync } from 'node:child_process';

export interface FfmpegVersion {
  major: number;
  minor: number;
}

const cache = new Map<string, FfmpegVersion | null>();

/** Version from `ffmpeg -version` ("ffmpeg version 4.4.2-0ubuntu0.22.04.1", "n6.1", ...); null if unknown (git builds). */
export function parseFfmpegVersion(versionOutput: string): FfmpegVersion | null {
  const m = /ffmpeg version n?(\d+)\.(\d+)/i.exec(versionOutput);
  return m ? { major: Number(m[1]), minor: Number(m[2]) } : null;
}

/** Major version only (kept for callers that need no more). */
export function parseFfmpegMajor(versionOutput: string): number | null {
  return parseFfmpegVersion(versionOutput)?.major ?? null;
}

export function ffmpegVersion(ffmpegPath: string): FfmpegVersion | null {
  if (!cache.has(ffmpegPath)) {
    const r = spawnSync(ffmpegPath, ['-hide_banner', '-version'], { encoding: 'utf8', timeout: 5000 });
    cache.set(ffmpegPath, r.status === 0 ? parseFfmpegVersion(`${r.stdout}`) : null);
  }
  return cache.get(ffmpegPath) ?? null;
}

export function ffmpegMajor(ffmpegPath: string): number | null {
  return ffmpegVersion(ffmpegPath)?.major ?? null;
}

/** `-stimeout` for ffmpeg < 5, `-timeout` otherwise (also when the version cannot be read: git builds are new). */
export function rtspTimeoutOption(major: number | null): '-timeout' | '-stimeout' {
  return major !== null && major < 5 ? '-stimeout' : '-timeout';
}

/** `-fps_mode` from ffmpeg 5.1 on (also for unknown versions: git builds are new), `-vsync` before. */
export function fpsModeOption(v: FfmpegVersion | null): '-fps_mode' | '-vsync' {
  return v !== null && (v.major < 5 || (v.major === 5 && v.minor < 1)) ? '-vsync' : '-fps_mode';
}
