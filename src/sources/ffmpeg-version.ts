/**
 * The RTSP socket timeout option changed name: ffmpeg 4.x calls it `-stimeout` (µs) and uses `-timeout` for the
 * *listen* timeout (which would turn the client into a server); ffmpeg 5+ calls it `-timeout` (µs). Ubuntu 22.04
 * (the Jetson image) ships 4.4, Debian 12 ships 5.1, so the daemon asks the installed ffmpeg once.
 */
import { spawnSync } from 'node:child_process';

const cache = new Map<string, number | null>();

/** Major version from `ffmpeg -version` ("ffmpeg version 4.4.2-0ubuntu0.22.04.1", "n6.1", ...); null if unknown. */
export function parseFfmpegMajor(versionOutput: string): number | null {
  const m = /ffmpeg version n?(\d+)\.\d+/i.exec(versionOutput);
  return m ? Number(m[1]) : null;
}

export function ffmpegMajor(ffmpegPath: string): number | null {
  if (!cache.has(ffmpegPath)) {
    const r = spawnSync(ffmpegPath, ['-hide_banner', '-version'], { encoding: 'utf8', timeout: 5000 });
    cache.set(ffmpegPath, r.status === 0 ? parseFfmpegMajor(`${r.stdout}`) : null);
  }
  return cache.get(ffmpegPath) ?? null;
}

/** `-stimeout` for ffmpeg < 5, `-timeout` otherwise (also when the version cannot be read: git builds are new). */
export function rtspTimeoutOption(major: number | null): '-timeout' | '-stimeout' {
  return major !== null && major < 5 ? '-stimeout' : '-timeout';
}
