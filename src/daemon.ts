/**
 * Wires the parts together and owns the lifecycle: model -> broker -> publisher -> HTTP -> cameras -> pipeline,
 * READY once warm and connected, periodic status, camera reload (SIGHUP) and a bounded stop (SIGTERM).
 */
import { redactUrl } from './config/load';
import { CameraConfig, DaemonConfig } from './config/types';
import { startHttp, HttpServer, Health } from './health/http';
import { Metrics } from './health/metrics';
import { InferenceEngine } from './infer/session';
import type { Logger } from './log';
import { Pipeline } from './pipeline';
import { PlcOutputs } from './plc'; // issue 10: Sparkplug B + Modbus reject outputs
import { EmbeddedBroker, startEmbeddedBroker } from './publish/broker';
import { CameraStatusMessage } from './publish/messages';
import { Publisher } from './publish/mqtt';
import { Camera, CameraState } from './sources/camera';
import { SystemdNotifier } from './systemd/notify';

const CAMERA_STATES: CameraState[] = ['connecting', 'streaming', 'stalled', 'failed', 'stopped'];

export interface DaemonDeps {
  env?: NodeJS.ProcessEnv;
}

export class Daemon {
  engine: InferenceEngine | null = null;
  publisher: Publisher | null = null;
  broker: EmbeddedBroker | null = null;
  http: HttpServer | null = null;
  pipeline: Pipeline | null = null;
  plc: PlcOutputs | null = null; // issue 10
  readonly metrics = new Metrics();
  readonly cameras = new Map<string, Camera>();
  notifier: SystemdNotifier;
  ready = false;
  private statusTimer: NodeJS.Timeout | null = null;
  private stopped = false;
  private readonly startedAt = Date.now();

  constructor(
    private config: DaemonConfig,
    private readonly log: Logger,
    deps: DaemonDeps = {},
  ) {
    this.notifier = new SystemdNotifier(deps.env ?? process.env, log);
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
    this.publisher = new Publisher({ ...c.mqtt, url, protocolVersion: this.broker ? 4 : 5 }, this.log);
    this.publisher.client.on('connect', () => this.metrics.mqttConnected.set(1));
    this.publisher.client.on('close', () => this.metrics.mqttConnected.set(0));
    if (c.http.port > 0) this.http = await startHttp(c.http.host, c.http.port, () => this.health(), this.metrics, this.log);
    // issue 10: PLC / SCADA outputs; the pipeline's results and rejects are teed to them.
    const m = this.engine.manifest;
    this.plc = new PlcOutputs({ config: c, mqttUrl: url, redactedUrl: redactUrl(url), registry: this.metrics.registry,
      node: { modelName: m.name, modelVersion: m.version, modelMethod: 'ET-STPM', provider: this.engine.provider, threshold: 0.5, rawThreshold: m.threshold, status: 'starting' } }, this.log);
    this.pipeline = new Pipeline(this.engine, this.plc.tee(this.publisher), this.metrics, { rejectDeadlineMs: c.reject.deadlineMs, snapshot: c.snapshot }, this.log);
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
    const cam = new Camera(cfg, { width: engine.manifest.width, height: engine.manifest.height }, this.config.ingest, this.log);
    this.cameras.set(cfg.id, cam);
    this.pipeline?.addCamera(cam);
    cam.on('state', (state) => {
      for (const s of CAMERA_STATES) this.metrics.cameraState.set({ camera: cam.id, state: s }, s === state ? 1 : 0);
      this.metrics.cameraRestarts.set({ camera: cam.id }, cam.restarts);
      this.publisher?.publishCameraStatus(this.cameraStatus(cam));
      this.plc?.cameraStatus(this.cameraStatus(cam)); // issue 10
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

  cameraStatus(cam: Camera): CameraStatusMessage {
    const c = this.pipeline?.counter(cam.id) ?? { captured: 0, processed: 0, dropped: 0, ng: 0 };
    const m = this.engine?.manifest;
    const s: CameraStatusMessage = {
      camera: cam.id,
      state: cam.state,
      fps: Math.round(cam.fps() * 10) / 10,
      captured: c.captured,
      processed: c.processed,
      dropped: c.dropped,
      provider: this.engine?.provider ?? 'none',
      model: { name: m?.name ?? '', version: m?.version ?? '' },
      since: cam.since,
    };
    if (cam.error) s.error = cam.error;
    const plc = this.plc?.outputStatus(cam.id); // issue 10: the camera's Modbus reject output
    if (plc) s.plc = plc;
    return s;
  }

  /** Frames really being processed: one scored within the stall timeout. */
  processingHealth(now = Date.now()): { ok: boolean; reason?: string } {
    const p = this.pipeline;
    if (!p) return { ok: false, reason: 'starting' };
    const age = p.lastProcessedAt === 0 ? Infinity : now - p.lastProcessedAt;
    if (age <= this.config.ingest.stallTimeoutMs) return { ok: true };
    const cams = [...this.cameras.values()].map((c) => `${c.id}=${c.state}${c.error ? ` (${c.error})` : ''}`).join(', ');
    const since = p.lastProcessedAt === 0 ? 'no frame processed yet' : `no frame processed for ${Math.round(age)} ms`;
    return { ok: false, reason: `${since}; cameras: ${cams || 'none'}` };
  }

  health(): Health {
    const base = {
      provider: this.engine?.provider ?? null,
      mqttConnected: this.publisher?.connected ?? false,
      cameras: Object.fromEntries([...this.cameras.values()].map((c) => [c.id, c.state])),
      lastProcessedAt: this.pipeline?.lastProcessedAt || null,
      uptimeS: Math.round((Date.now() - this.startedAt) / 1000),
      ...this.plc?.health(), // issue 10: sparkplug / modbus link states (informational, not part of ok)
    };
    if (!this.ready) return { ok: false, reason: this.engine ? 'not ready: waiting for the MQTT broker' : 'not ready: loading model', ...base };
    if (!this.publisher?.connected) return { ok: false, reason: 'MQTT broker not connected', ...base };
    const p = this.processingHealth();
    return p.ok ? { ok: true, ...base } : { ok: false, reason: p.reason, ...base };
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
      this.publisher?.publishCameraStatus(this.cameraStatus(cam));
      this.plc?.cameraStatus(this.cameraStatus(cam)); // issue 10
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
    await Promise.all([
      this.publisher?.close([...this.cameras.values()].map((c) => this.cameraStatus(c)), 1500),
      this.plc?.close(1500), // issue 10: coils OFF, Sparkplug NDEATH
    ]);
    await this.http?.close();
    await this.broker?.close();
    this.log.info(this.summary());
  }
}
