/**
 * Reads the decoder's stderr: ffmpeg started with `-loglevel level+verbose` prefixes each line with its level
 * ("[rtsp @ 0x55..] [error] Connection refused"). Warnings and errors go to the log as before; info and verbose
 * lines are not logged, except what gives the source format (codec, size): the input stream's description at start,
 * and the filter graph's input line, which ffmpeg prints again whenever the decoded size changes mid-stream. So a
 * camera that comes back (or carries on) with another resolution or codec is logged.
 */

export type DecoderLevel = 'panic' | 'fatal' | 'error' | 'warning' | 'info' | 'verbose' | 'debug' | 'trace';

export interface DecoderLine {
  /** The line's level; a line without a level prefix gets `fallback` (see parseDecoderLine). */
  level: DecoderLevel;
  /** The line without the level prefix (context prefixes such as "[rtsp @ 0x..]" are kept). */
  text: string;
}

const LEVEL = /^((?:\[[^\]]* @ 0x[0-9a-f]+\] )*)\[(panic|fatal|error|warning|info|verbose|debug|trace)\] /i;

/**
 * `fallback`: the level of a line without a prefix. gst-launch and ffmpeg without the `level` flag never prefix (so
 * warning); with the flag, an unprefixed line continues the previous message (ffmpeg prefixes only a message's first
 * line: the SDP dump, for example), so the caller passes the previous line's level.
 */
export function parseDecoderLine(line: string, fallback: DecoderLevel = 'warning'): DecoderLine {
  const m = LEVEL.exec(line);
  if (!m) return { level: fallback, text: line };
  return { level: m[2].toLowerCase() as DecoderLevel, text: m[1] + line.slice(m[0].length) };
}

/** True for lines worth an operator's attention (warning and worse). */
export function isProblem(level: DecoderLevel): boolean {
  return level === 'panic' || level === 'fatal' || level === 'error' || level === 'warning';
}

export interface SourceFormat {
  codec: string;
  width: number;
  height: number;
}

export function formatText(f: SourceFormat): string {
  return `${f.codec} ${f.width}x${f.height}`;
}

/**
 * Picks the first video stream of "Input #0" out of ffmpeg's stream dump, e.g.
 * "  Stream #0:0: Video: h264 (Constrained Baseline), yuv420p(tv, progressive), 320x320 [SAR 1:1 DAR 1:1], 5 fps".
 * One instance per decoder process.
 */
export class InputFormatReader {
  private section: 'none' | 'input' | 'output' = 'none';
  private found = false;
  private codec = 'video';

  /** Returns a format on the lines that describe one: the input stream once, then every filter graph (re)start. */
  feed(text: string): SourceFormat | null {
    const g = /^\[graph \d+ input from stream \d+:\d+ @ 0x[0-9a-f]+\] w:(\d+) h:(\d+) /.exec(text);
    if (g) return { codec: this.codec, width: Number(g[1]), height: Number(g[2]) };
    if (/^Input #0\b/.test(text)) this.section = 'input';
    else if (/^Output #\d+\b/.test(text) || /^Stream mapping:/.test(text)) this.section = 'output';
    if (this.found || this.section !== 'input') return null;
    const m = /^\s*Stream #0:\d+.*?: Video: ([A-Za-z0-9_]+).*?, (\d{1,5})x(\d{1,5})\b/.exec(text);
    if (!m) return null;
    this.found = true;
    this.codec = m[1];
    return { codec: m[1], width: Number(m[2]), height: Number(m[3]) };
  }
}
