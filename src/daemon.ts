/**
 * Wires the parts together and owns the lifecycle: model -> broker -> publisher -> HTTP -> cameras -> pipeline,
 * READY once warm and connected, periodic status, camera reload (SIGHUP) and a bounded stop (SIGTERM).
 */
import { CameraConfig, DaemonConfig } from './config/types';
import { ConsoleParts, createConsole } from './console'; // console (issue 9)
import type { CommandClient } from './console/mqtt-commands';
import { startHttp, HttpServer, Health } from './health/http';
import { Metrics } from './health/metrics';
import { InferenceEngine } from './infer/session';
import type { Logger } from './log';
import { FanOutSink, isCameraStatusSink, Pipeline } from './pipeline';
import type { CameraStatusSink, FrameListener, FrameSource, ResultSink } from './pipeline';
import { PlcOutputs } from './plc'; // issue 10: Sparkplug B + Modbus reject outputs
import { EmbeddedBroker, startEmbeddedBroker } from './publish/broker';
import { CameraStatusMessage } from './publish/messages';
import { MqttOptions, Publisher } from './publish/mqtt';
import { redactUrl } from './redact';
import { Camera, CAMERA_STATES, CameraState, IngestOptions } from './sources/camera';
import type { FrameSize } from './sources/ffmpeg-args';
import { SystemdNotifier } from './systemd/notify';

/** The daemon's MQTT side (src/publish/mqtt.ts): the primary output, plus readiness and an orderly close. */
export interface StatusPublisher extends ResultSink, CameraStatusSink {
  waitConnected(): Promise<void>;
  onConnection(listener: (connected: boolean) => void): void;
  /** The MQTT client for inbound commands (the console's command topic); absent where an output cannot subscribe. */
  readonly commandClient?: CommandClient;
  /** Publishes final statuses and "offline", then disconnects; bounded by timeoutMs. */
  close(finalStatuses: CameraStatusMessage[], timeoutMs: number): Promise<void>;
}

/** A supervised camera as the daemon sees it (src/sources/camera.ts): a frame source with a state and a lifecycle. */
export interface SupervisedCamera extends FrameSource {
  readonly config: CameraConfig;
  readonly state: CameraState;
  readonly error: string | undefined;
  readonly since: number;
  readonly restarts: number;
  /** Decoder frames identical to the one before: never scored (docs/daemon.md, "Frozen cameras"). */
  readonly repeated: number;
  /** When the decoder last delivered a frame, and a changed one (ms since epoch; 0 = none yet). */
  readonly lastFrameAt: number;
  readonly lastNewFrameAt: number;
  fps(now?: number): number;
  start(): void;
  stop(): Promise<void>;
  on(event: 'frame', listener: FrameListener): unknown;
  on(event: 'state', listener: (state: CameraState, error: string | undefined) => void): unknown;
  on(event: 'repeat', listener: () => void): unknown;
}

/** The daemon's parts, each replaceable from outside (tests, and outputs added beside MQTT). */
export interface DaemonDeps {
  env?: NodeJS.ProcessEnv;
  /** Makes the MQTT side; default: the mqtt.js Publisher. */
  publisher?: (opts: MqttOptions, log: Logger) => StatusPublisher;
  /** Makes one camera; default: the decoder-process Camera. */
  camera?: (cfg: CameraConfig, size: FrameSize, ingest: IngestOptions, log: Logger) => SupervisedCamera;
  /**
   * More outputs beside MQTT (Sparkplug, Modbus, the console): each gets every result, reject and snapshot, and
   * camera statuses if it is also a CameraStatusSink.
   */
  sinks?: readonly ResultSink[];
}

const defaultParts = {
  publisher: (opts: MqttOptions, log: Logger): StatusPublisher => new Publisher(opts, log),
  camera: (cfg: CameraConfig, size: FrameSize, ingest: IngestOptions, log: Logger): SupervisedCamera => new Camera(cfg, size, ingest, log),
};

export class Daemon {
  engine: InferenceEngine | null = null;
  publisher: StatusPublisher | null = null;
  broker: EmbeddedBroker | null = null;
  http: HttpServer | null = null;
  pipeline: Pipeline | null = null;
  console: ConsoleParts | null = null; // console (issue 9)
  plc: PlcOutputs | null = null; // issue 10
  readonly metrics = new Metrics();
  readonly cameras = new Map<string, SupervisedCamera>();
  notifier: SystemdNotifier;
  ready = false;
  private readonly parts: Required<Pick<DaemonDeps, 'publisher' | 'camera'>>;
  private readonly sinks: readonly ResultSink[];
  private readonly statusSinks: CameraStatusSink[];
  private statusTimer: NodeJS.Timeout | null = null;
  private stopped = false;
  private readonly startedAt = Date.now();

  constructor(
    private config: DaemonConfig,
    private readonly log: Logger,
    deps: DaemonDeps = {},
  ) {
    this.notifier = new SystemdNotifier(deps.env ?? process.env, log);
    this.parts = { publisher: deps.publisher ?? defaultParts.publisher, camera: deps.camera ?? defaultParts.camera };
    this.sinks = deps.sinks ?? [];
    this.statusSinks = this.sinks.filter(isCameraStatusSink);
  }

  /** Throws ModelError (exit 3) or Error (exit 1). */
  async start(): Promise<void> {
    const c = this.config;
    this.engine = await InferenceEngine.load(
      { modelDir: c.model.dir, providers: c.model.providers, maxBatch: c.model.maxBatch, tensorrt: c.model.tensorrt },
      this.log,
    );
    let url = c.mqtt.url;
    if (url === '') {
      this.broker = await startEmbeddedBroker(c.mqtt.embeddedHost, c.mqtt.embeddedPort, this.log);
      url = this.broker.url;
    }
    // aedes speaks MQTT 3.1.1 only: no message properties on the embedded broker (docs/mqtt.md).
    this.publisher = this.parts.publisher({ ...c.mqtt, url, protocolVersion: this.broker ? 4 : 5 }, this.log);
    this.publisher.onConnection((up) => this.metrics.mqttConnected.set(up ? 1 : 0));
    // --- console (issue 9): hub + HTTP routes + MQTT commands + the pipeline's result tap ---
    if (c.console.enabled && c.http.port > 0) {
      const cameras = () => [...this.cameras.values()].map((cam) => ({ ...this.cameraStatus(cam), ng: this.pipeline?.counter(cam.id).ng ?? 0 }));
      this.console = createConsole({ options: c.console, host: c.http.host, topicPrefix: c.mqtt.topicPrefix, model: this.engine.manifest,
        sources: { health: () => this.health(), cameras }, mqtt: this.publisher.commandClient ?? null, log: this.log });
    }
    if (c.http.port > 0) this.http = await startHttp(c.http.host, c.http.port, () => this.health(), this.metrics, this.log, this.console?.handler ?? null);
    const sink = this.sinks.length > 0 ? new FanOutSink(this.publisher, this.sinks, this.log) : this.publisher;
    // issue 10: PLC / SCADA outputs; the pipeline's results and rejects are teed to them.
    const m = this.engine.manifest;
    this.plc = new PlcOutputs({ config: c, mqttUrl: url, redactedUrl: redactUrl(url), registry: this.metrics.registry,
      node: { modelName: m.name, modelVersion: m.version, modelMethod: m.method, provider: this.engine.provider, threshold: 0.5, rawThreshold: m.threshold, status: 'starting' } }, this.log);
    this.pipeline = new Pipeline(this.engine, this.plc.tee(sink), this.metrics, { rejectDeadlineMs: c.reject.deadlineMs, snapshot: c.snapshot }, this.log);
    if (this.console) this.pipeline.resultTap = (r) => this.console?.hub.onResult(r);
    this.pipeline.start();
    for (const cam of c.cameras) this.addCamera(cam);
    this.statusTimer = setInterval(() => this.periodicStatus(), c.status.intervalMs);
    void this.publisher.waitConnected().then(() => {
      if (this.stopped || this.ready) return;
      this.ready = true;
      this.metrics.ready.set(1);
      this.plc?.setNode({ status: 'ready' }); // issue 10
      this.log.info({ provider: this.engine?.provider }, 'ready: model warm, broker connected');
      void this.notifier.ready(this.summary());
      this.notifier.startWatchdog(() => this.processingHealth());
    });
  }

  private addCamera(cfg: CameraConfig): void {
    const engine = this.engine as InferenceEngine;
    const cam = this.parts.camera(cfg, { width: engine.manifest.width, height: engine.manifest.height }, this.config.ingest, this.log);
    this.cameras.set(cfg.id, cam);
    this.pipeline?.addCamera(cam);
    cam.on('repeat', () => this.metrics.repeated.inc({ camera: cam.id }));
    cam.on('state', (state) => {
      for (const s of CAMERA_STATES) this.metrics.cameraState.set({ camera: cam.id, state: s }, s === state ? 1 : 0);
      this.metrics.cameraRestarts.set({ camera: cam.id }, cam.restarts);
      this.publishCameraStatus(this.cameraStatus(cam));
    });
    this.plc?.cameraAdded(this.cameraStatus(cam)); // issue 10
    this.log.info({ camera: cfg.id, url: redactUrl(cfg.url), roi: cfg.roi, fps: cfg.fps, decoder: cfg.decoder }, 'camera added');
    cam.start();
  }

  private async removeCamera(id: string): Promise<void> {
    const cam = this.cameras.get(id);
    if (!cam) return;
    this.cameras.delete(id);
    this.pipeline?.removeCamera(id);
    this.plc?.cameraRemoved(id); // issue 10
    await cam.stop();
    this.publisher?.forgetCamera(id);
    for (const s of this.statusSinks) s.forgetCamera(id);
    this.log.info({ camera: id }, 'camera removed');
  }

  /** SIGHUP: applies a new camera list; unchanged cameras keep streaming. */
  async reloadCameras(next: CameraConfig[]): Promise<{ added: string[]; removed: string[]; changed: string[] }> {
    const byId = new Map(next.map((c) => [c.id, c]));
    const added: string[] = [];
    const removed: string[] = [];
    const changed: string[] = [];
    for (const [id, cam] of this.cameras) {
      const n = byId.get(id);
      if (!n) removed.push(id);
      else if (JSON.stringify(n) !== JSON.stringify(cam.config)) changed.push(id);
    }
    for (const c of next) if (!this.cameras.has(c.id)) added.push(c.id);
    for (const id of [...removed, ...changed]) await this.removeCamera(id);
    for (const id of [...changed, ...added]) this.addCamera(byId.get(id) as CameraConfig);
    this.config = { ...this.config, cameras: next };
    this.log.info({ added, removed, changed }, 'camera list reloaded');
    return { added, removed, changed };
  }

  private publishCameraStatus(s: CameraStatusMessage): void {
    this.publisher?.publishCameraStatus(s);
    for (const sink of this.statusSinks) sink.publishCameraStatus(s);
    this.plc?.cameraStatus(s); // issue 10
  }

  cameraStatus(cam: SupervisedCamera): CameraStatusMessage {
    const c = this.pipeline?.counter(cam.id) ?? { captured: 0, processed: 0, dropped: 0, ng: 0 };
    const m = this.engine?.manifest;
    const s: CameraStatusMessage = {
      camera: cam.id,
      state: cam.state,
      fps: Math.round(cam.fps() * 10) / 10,
      captured: c.captured,
      processed: c.processed,
      dropped: c.dropped,
      repeated: cam.repeated,
      provider: this.engine?.provider ?? 'none',
      model: { name: m?.name ?? '', version: m?.version ?? '' },
      since: cam.since,
    };
    if (cam.error) s.error = cam.error;
    const plc = this.plc?.outputStatus(cam.id); // issue 10: the camera's Modbus reject output
    if (plc) s.plc = plc;
    return s;
  }

  /**
   * Frames really being processed: one scored within the stall timeout, or a streaming camera sending repeats of
   * an image (never scored) whose last changed frame the pipeline has already gone past.
   */
  processingHealth(now = Date.now()): { ok: boolean; reason?: string } {
    const p = this.pipeline;
    if (!p) return { ok: false, reason: 'starting' };
    const stall = this.config.ingest.stallTimeoutMs;
    const age = p.lastProcessedAt === 0 ? Infinity : now - p.lastProcessedAt;
    if (age <= stall) return { ok: true };
    for (const c of this.cameras.values()) {
      const repeating = c.state === 'streaming' && c.lastFrameAt > c.lastNewFrameAt && now - c.lastFrameAt <= stall;
      if (repeating && c.lastNewFrameAt > 0 && p.lastProcessedAt >= c.lastNewFrameAt) return { ok: true };
    }
    const cams = [...this.cameras.values()].map((c) => `${c.id}=${c.state}${c.error ? ` (${c.error})` : ''}`).join(', ');
    const since = p.lastProcessedAt === 0 ? 'no frame processed yet' : `no frame processed for ${Math.round(age)} ms`;
    return { ok: false, reason: `${since}; cameras: ${cams || 'none'}` };
  }

  health(now = Date.now()): Health {
    const base = {
      provider: this.engine?.provider ?? null,
      mqttConnected: this.publisher?.connected ?? false,
      cameras: Object.fromEntries([...this.cameras.values()].map((c) => [c.id, c.state])),
      lastProcessedAt: this.pipeline?.lastProcessedAt || null,
      uptimeS: Math.round((now - this.startedAt) / 1000),
      ...this.plc?.health(), // issue 10: sparkplug / modbus link states (informational, not part of ok)
    };
    if (!this.ready) return { ok: false, reason: this.engine ? 'not ready: waiting for the MQTT broker' : 'not ready: loading model', ...base };
    if (!this.publisher?.connected) return { ok: false, reason: 'MQTT broker not connected', ...base };
    const p = this.processingHealth(now);
    if (!p.ok) return { ok: false, reason: p.reason, ...base };
    // A frozen camera looks alive (its decoder delivers) but shows an old image: not healthy, even if others are.
    const frozen = [...this.cameras.values()].filter((c) => c.state === 'frozen');
    if (frozen.length > 0) return { ok: false, reason: `camera frozen: ${frozen.map((c) => `${c.id} (${c.error ?? 'image unchanged'})`).join(', ')}`, ...base };
    return { ok: true, ...base };
  }

  summary(): string {
    const cams = [...this.cameras.values()];
    const streaming = cams.filter((c) => c.state === 'streaming').length;
    let captured = 0;
    let processed = 0;
    let dropped = 0;
    let ng = 0;
    for (const c of this.pipeline?.counters.values() ?? []) {
      captured += c.captured;
      processed += c.processed;
      dropped += c.dropped;
      ng += c.ng;
    }
    const fps = cams.reduce((a, c) => a + c.fps(), 0);
    const states = cams.map((c) => `${c.id}=${c.state}`).join(' ');
    return (
      `cameras ${streaming}/${cams.length} streaming, ${fps.toFixed(1)} fps | captured ${captured} processed ${processed} ` +
      `dropped ${dropped} ng ${ng} | infer p50 ${(this.pipeline?.inferenceP50() ?? 0).toFixed(1)} ms on ${this.engine?.provider ?? '-'} | ` +
      `mqtt ${this.publisher?.connected ? 'up' : 'down'} | ${states}`
    );
  }

  private periodicStatus(): void {
    for (const cam of this.cameras.values()) {
      this.metrics.cameraRestarts.set({ camera: cam.id }, cam.restarts);
      this.publishCameraStatus(this.cameraStatus(cam));
    }
    const line = this.summary();
    this.log.info({ summary: true }, line);
    // On a terminal (the demo) also a plain line on stdout; logs stay JSON on stderr.
    if (process.stdout.isTTY) process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);
    void this.notifier.status(line);
  }

  /** Finishes the batch in flight, publishes final statuses and "offline", closes everything. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.log.info('stopping');
    if (this.statusTimer) clearInterval(this.statusTimer);
    await this.notifier.stopping();
    this.notifier.close();
    // Cameras first (no new frames), then the pipeline drains the batch in flight.
    const camStops = [...this.cameras.values()].map((c) => c.stop());
    await this.pipeline?.stop();
    await Promise.all(camStops);
    await this.console?.close(); // console (issue 9): last capture write
    await Promise.all([
      this.publisher?.close([...this.cameras.values()].map((c) => this.cameraStatus(c)), 1500),
      this.plc?.close(1500), // issue 10: coils OFF, Sparkplug NDEATH
    ]);
    await this.http?.close();
    await this.broker?.close();
    this.log.info(this.summary());
  }
}
