/**
 * One camera: a decoder child process (ffmpeg, or gst-launch for "jetson-gst") writing raw RGB frames of the model
 * input size to stdout. Supervises it: connect timeout, stall watchdog, frozen-image watchdog (RTSP), restart with
 * exponential backoff, stderr to the log, and a state (connecting, streaming, stalled, frozen, failed, stopped) for
 * the status topic.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { createInterface } from 'node:readline';
import { redactUrl } from '../redact';
import type { CameraConfig, IngestOptions } from '../config/types';
import type { Logger } from '../log';
import type { FrameSource } from '../pipeline/interfaces';
import type { CameraState } from '../pipeline/records';
import { Backoff } from './backoff';
import { DecoderLevel, formatText, InputFormatReader, isProblem, parseDecoderLine, SourceFormat } from './decoder-log';
import { DecoderCommand, ffmpegCommand, FrameSize, jetsonGstCommand } from './ffmpeg-args';
import { FrameReader } from './frame-reader';
import { ffmpegVersion } from './ffmpeg-version';
import { ChangeDetector } from './frame-change';
import { SyntheticFeeder, SyntheticLine } from './synthetic/feeder';
import { classifyUrl, SourceKind } from './url';

export type { IngestOptions };
export { CAMERA_STATES } from '../pipeline/records';
export type { CameraState } from '../pipeline/records';

export interface CameraEvents {
  /** A frame whose image differs from the last one handed on (RTSP; other sources: every frame). */
  frame: [frame: Buffer, capturedAt: number];
  /** A frame showing the same image as the last one handed on (within ingest.frozenTolerance): never scored. */
  repeat: [];
  state: [state: CameraState, error: string | undefined];
}

/** How long a decoder gets to exit after SIGTERM before SIGKILL. */
const KILL_GRACE_MS = 1500;

export class Camera extends EventEmitter<CameraEvents> implements FrameSource {
  state: CameraState = 'stopped';
  error: string | undefined;
  since = Date.now();
  /** Frames read off the decoder since start (also the next frame's seq; repeats count too). */
  captured = 0;
  /** Frames not handed on because they showed the same image as the last one handed on (src/sources/frame-change.ts). */
  repeated = 0;
  restarts = 0;
  /** When the latest frame (any) and the latest changed frame arrived; 0 = none yet. */
  lastFrameAt = 0;
  lastNewFrameAt = 0;
  /** Codec and size of the RTSP stream as ffmpeg describes it (null until known, and for other sources). */
  sourceFormat: SourceFormat | null = null;
  private proc: ChildProcess | null = null;
  private feeder: SyntheticFeeder | null = null;
  private readonly line: SyntheticLine | null;
  private readonly source: SourceKind | null;
  private readonly backoff: Backoff;
  private watchdog: NodeJS.Timeout | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  /** Frames from the current decoder process, and when its first one came. */
  private decoderFrames = 0;
  private decoderFirstFrameAt = 0;
  /** Only live cameras (RTSP) are checked for repeats: a file, folder or generator replays frames on purpose. */
  private readonly change: ChangeDetector | null;
  private lastStderr = '';
  private running = false;
  private readonly frameTimes: number[] = [];
  private readonly stderrSeen = new Map<string, { at: number; suppressed: number }>();

  constructor(
    readonly config: CameraConfig,
    readonly size: FrameSize,
    private readonly opts: IngestOptions,
    private readonly log: Logger,
  ) {
    super();
    this.backoff = new Backoff(opts.reconnectMinMs, opts.reconnectMaxMs);
    let source: SourceKind | null = null;
    try {
      source = classifyUrl(config.url);
    } catch (err) {
      this.error = (err as Error).message;
    }
    this.source = source;
    this.line = source?.kind === 'synthetic' ? new SyntheticLine(source.params) : null;
    this.change = source?.kind === 'rtsp' ? new ChangeDetector(opts.frozenTolerance, size.width, size.height) : null;
  }

  get id(): string {
    return this.config.id;
  }

  /** Frames per second over the last 5 s. */
  fps(now = Date.now()): number {
    while (this.frameTimes.length > 0 && now - this.frameTimes[0] > 5000) this.frameTimes.shift();
    if (this.frameTimes.length < 2) return 0;
    const span = (now - this.frameTimes[0]) / 1000;
    return span > 0 ? this.frameTimes.length / Math.max(span, 1) : 0;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    if (!this.source) {
      // A camera whose URL cannot be used stays failed (and says why) without affecting the others.
      this.setState('failed', this.error);
      return;
    }
    this.connect();
  }

  private command(): DecoderCommand {
    const s = this.source as SourceKind;
    if (this.config.decoder === 'jetson-gst' && s.kind === 'rtsp') {
      return jetsonGstCommand(this.opts.gstLaunchPath, this.config, s.url, this.size, this.opts);
    }
    const timeouts = { connectTimeoutMs: this.opts.connectTimeoutMs, version: ffmpegVersion(this.opts.ffmpegPath) };
    return ffmpegCommand(this.opts.ffmpegPath, this.config, s, this.size, timeouts);
  }

  private connect(): void {
    if (!this.running) return;
    // A frozen camera stays frozen while its decoder restarts: only a changed image ends it.
    if (this.state !== 'frozen') this.setState('connecting', undefined);
    const cmd = this.command();
    for (const note of cmd.notes) this.log.warn({ camera: this.id }, note);
    this.log.info({ camera: this.id, cmd: cmd.command, args: cmd.args.map(redactUrl) }, 'starting decoder');
    this.lastStderr = '';
    const reader = new FrameReader(this.size.width * this.size.height * 3, (frame) => this.onFrame(frame));
    let proc: ChildProcess;
    try {
      proc = spawn(cmd.command, cmd.args, { stdio: [cmd.stdin, 'pipe', 'pipe'] });
    } catch (err) {
      this.onDecoderGone(`cannot start ${cmd.command}: ${(err as Error).message}`);
      return;
    }
    this.proc = proc;
    // Bytes still buffered from a decoder that was already replaced must not count as the new one's frames.
    proc.stdout?.on('data', (chunk: Buffer) => {
      if (this.proc === proc) reader.push(chunk);
    });
    if (proc.stderr) {
      const formats = new InputFormatReader();
      let previous: DecoderLevel = 'warning';
      createInterface({ input: proc.stderr }).on('line', (raw) => {
        const line = parseDecoderLine(redactUrl(raw.trim()), previous);
        previous = line.level;
        if (line.text.length === 0) return;
        if (isProblem(line.level)) {
          this.lastStderr = line.text;
          this.logDecoderLine(cmd.command, line.text);
        } else if (line.level === 'info' || line.level === 'verbose') {
          const f = formats.feed(line.text);
          if (f) this.onSourceFormat(f);
        }
      });
    }
    proc.on('error', (err) => {
      // spawn failure (ENOENT...): 'exit' may not follow.
      if (this.proc === proc) {
        this.proc = null;
        this.onDecoderGone(`cannot start ${cmd.command}: ${err.message}`);
      }
    });
    proc.on('exit', (code, signal) => {
      if (this.proc !== proc) return;
      this.proc = null;
      const why = this.lastStderr || `${cmd.command} exited (${signal ?? `code ${code}`})`;
      this.onDecoderGone(why);
    });
    if (cmd.stdin === 'pipe' && proc.stdin && this.line) {
      this.feeder = new SyntheticFeeder(this.line, proc.stdin, (err) => this.log.warn({ camera: this.id, err: err.message }, 'synthetic feeder error'));
      this.feeder.start();
    }
    this.lastFrameAt = 0;
    this.decoderFrames = 0;
    this.decoderFirstFrameAt = 0;
    const startedAt = Date.now();
    this.clearWatchdog();
    this.watchdog = setInterval(() => this.checkStall(startedAt), Math.min(500, this.opts.stallTimeoutMs / 4));
  }

  /** Decoder lines go to the log, but a line repeated per frame is logged once a minute with a count. */
  private logDecoderLine(decoder: string, text: string): void {
    const key = text.replace(/0x[0-9a-f]+/gi, '');
    const now = Date.now();
    const seen = this.stderrSeen.get(key);
    if (seen && now - seen.at < 60000) {
      seen.suppressed++;
      return;
    }
    const repeated = seen?.suppressed ?? 0;
    if (this.stderrSeen.size > 200) this.stderrSeen.clear();
    this.stderrSeen.set(key, { at: now, suppressed: 0 });
    this.log.warn({ camera: this.id, decoder, ...(repeated > 0 ? { repeatedSinceLast: repeated } : {}) }, text);
  }

  /** The stream's codec/size, once per decoder start: a camera that returns with another one is logged. */
  private onSourceFormat(f: SourceFormat): void {
    const prev = this.sourceFormat;
    this.sourceFormat = f;
    if (prev === null) {
      this.log.info({ camera: this.id, source: f }, `camera ${this.id}: source stream ${formatText(f)}`);
    } else if (formatText(prev) !== formatText(f)) {
      this.log.warn({ camera: this.id, from: prev, to: f }, `camera ${this.id}: source stream changed from ${formatText(prev)} to ${formatText(f)}`);
    }
  }

  private checkStall(startedAt: number): void {
    const now = Date.now();
    if (this.decoderFrames === 0 && now - startedAt > this.opts.connectTimeoutMs) {
      this.log.warn({ camera: this.id }, `no frame within ${this.opts.connectTimeoutMs} ms of starting the decoder`);
      this.restart('failed', `no frame within ${this.opts.connectTimeoutMs} ms (connect timeout)`);
    } else if (this.decoderFrames > 0 && now - this.lastFrameAt > this.opts.stallTimeoutMs) {
      this.log.warn({ camera: this.id }, `no frame for ${this.opts.stallTimeoutMs} ms: stalled, restarting decoder`);
      this.restart('stalled', `no frame for ${this.opts.stallTimeoutMs} ms`);
    }
  }

  private onFrame(frame: Buffer): void {
    const now = Date.now();
    this.lastFrameAt = now;
    this.captured++;
    if (this.decoderFrames++ === 0) this.decoderFirstFrameAt = now;
    this.frameTimes.push(now);
    if (this.frameTimes.length > 600) this.frameTimes.shift();
    if (this.change && !this.change.check(frame, now)) {
      this.onRepeat(now);
      return;
    }
    this.lastNewFrameAt = now;
    if (this.state !== 'streaming') {
      this.backoff.reset();
      this.setState('streaming', undefined);
    }
    this.emit('frame', frame, now);
  }

  /**
   * A repeat of the last scored image (src/sources/frame-change.ts): counted, never scored. The decoder is alive (a first frame after a restart makes a
   * connecting camera streaming; a frozen one stays frozen). An image unchanged for longer than the frozen timeout,
   * and for that long since the current decoder's first frame (so restarts are spaced by the timeout), makes the
   * camera frozen and restarts the decoder: a stuck encoder or RTSP session is often cured by a new session.
   */
  private onRepeat(now: number): void {
    const change = this.change as ChangeDetector;
    this.repeated++;
    this.emit('repeat');
    if (this.state === 'connecting') this.setState('streaming', undefined);
    const timeout = this.opts.frozenTimeoutMs;
    if (timeout <= 0 || (this.state !== 'streaming' && this.state !== 'frozen')) return;
    const unchanged = change.unchangedFor(now);
    if (unchanged <= timeout || now - this.decoderFirstFrameAt <= timeout) return;
    const why = `image unchanged for ${(unchanged / 1000).toFixed(1)} s (${change.streak} repeated frames)`;
    this.log.warn({ camera: this.id, unchangedMs: unchanged, repeatedFrames: change.streak, lastDistance: Math.round(change.lastDistance * 100) / 100,
      frozenTolerance: change.tolerance, frozenTimeoutMs: timeout }, `camera ${this.id}: ${why}: frozen, restarting decoder`);
    this.restart('frozen', why);
  }

  /** Kill the decoder, report `state`, and reconnect after the backoff delay. */
  private restart(state: 'stalled' | 'failed' | 'frozen', error: string): void {
    const proc = this.proc;
    this.proc = null;
    this.stopFeeder();
    if (proc) killTree(proc);
    this.onDecoderGone(error, state);
  }

  private onDecoderGone(error: string, state: 'stalled' | 'failed' | 'frozen' = 'failed'): void {
    this.clearWatchdog();
    this.stopFeeder();
    if (!this.running) return;
    this.restarts++;
    this.setState(state, error);
    const delay = this.backoff.next();
    this.log.info({ camera: this.id, delayMs: delay }, `reconnecting in ${delay} ms`);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.connect();
    }, delay);
  }

  private setState(state: CameraState, error: string | undefined): void {
    if (this.state === state && this.error === error) return;
    this.state = state;
    this.error = error;
    this.since = Date.now();
    this.log.info({ camera: this.id, state, error }, `camera ${this.id}: ${state}${error ? ` (${error})` : ''}`);
    this.emit('state', state, error);
  }

  private stopFeeder(): void {
    this.feeder?.stop();
    this.feeder = null;
  }

  private clearWatchdog(): void {
    if (this.watchdog) clearInterval(this.watchdog);
    this.watchdog = null;
  }

  /** Stops the decoder; resolves once it has exited (SIGKILL after a grace period). */
  async stop(): Promise<void> {
    this.running = false;
    this.clearWatchdog();
    this.stopFeeder();
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const proc = this.proc;
    this.proc = null;
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise<void>((res) => proc.once('exit', () => res()));
      killTree(proc);
      await exited;
    }
    this.setState('stopped', undefined);
  }
}

function killTree(proc: ChildProcess): void {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  proc.stdin?.destroy();
  proc.kill('SIGTERM');
  const t = setTimeout(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  }, KILL_GRACE_MS);
  t.unref();
  proc.once('exit', () => clearTimeout(t));
}
