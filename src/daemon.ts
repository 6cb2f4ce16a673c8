/**
 * Wires the parts together and owns the lifecycle: models -> HTTP -> broker -> publisher -> cameras -> pipeline,
 * READY once warm and connected, periodic status, camera and model reload (SIGHUP) and a bounded stop (SIGTERM).
 * Each camera is scored by its own model (cameras[].model, else model.dir); cameras naming the same folder share
 * one session (src/infer/models.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CameraConfig, DaemonConfig, IngestOptions } from './config/types';
import { startHttp, HttpServer, Health } from './health/http';
import { CameraHealthView, degradedReasons, HealthSnapshot, healthOf, processingHealth, summaryLine } from './health/rules';
import { Metrics } from './health/metrics';
import { ModelError } from './infer/manifest';
import { LoadedModel, modelKey, ModelSet } from './infer/models';
import type { Logger } from './log';
import { buildOutputs, consoleWanted, defaultPublisher, Outputs, PublisherFactory, StatusPublisher } from './outputs';
import { Pipeline } from './pipeline';
import type { FanOutSink } from './pipeline/fan-out';
import type { FrameListener, FrameSource, Output } from './pipeline/interfaces';
import { CAMERA_STATES, CameraState, CameraStatusMessage } from './pipeline/records';
import { EmbeddedBroker, startEmbeddedBroker } from './publish/broker';
import { redactUrl } from './redact';
import { ModelOutcome, modelDirOf, planModels, planReload } from './reload/plan';
import { ActiveThreshold, parseThreshold, ThresholdError } from './score/threshold';
import { Camera } from './sources/camera';
import { FailedStateHold, ReportedState } from './sources/status-hold';
import type { FrameSize } from './sources/ffmpeg-args';
import { UnscoredCamera } from './sources/unscored-camera';
import { SystemdNotifier } from './systemd/notify';

export type { StatusPublisher };

/** A supervised camera as the daemon sees it (src/sources/camera.ts): a frame source with a state and a lifecycle. */
export interface SupervisedCamera extends FrameSource {
  readonly config: CameraConfig;
  readonly state: CameraState;
  readonly error: string | undefined;
  readonly since: number;
  readonly restarts: number;
  /** Decoder frames repeating the last scored image: never scored (docs/daemon.md, "Frozen cameras"). */
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
  publisher?: PublisherFactory;
  /** Makes one camera; default: the decoder-process Camera. */
  camera?: (cfg: CameraConfig, size: FrameSize, ingest: IngestOptions, log: Logger) => SupervisedCamera;
  /** More outputs, after those built from config (src/outputs/index.ts); each gets the hooks it implements. */
  sinks?: readonly Output[];
}

const defaultParts = {
  publisher: defaultPublisher,
  camera: (cfg: CameraConfig, size: FrameSize, ingest: IngestOptions, log: Logger): SupervisedCamera => new Camera(cfg, size, ingest, log),
};

/** What a SIGHUP changed. */
export interface ReloadResult {
  added: string[];
  removed: string[];
  changed: string[];
  /** Cameras now scored by another model. */
  swapped: string[];
  /** Cameras whose new model failed to load: they keep the one they had (or, new cameras, none). */
  modelFailed: string[];
  /** Cameras whose active threshold changed (docs/configuration.md, "Threshold override"). */
  threshold: string[];
}

export class Daemon {
  models: ModelSet | null = null;
  publisher: StatusPublisher | null = null;
  broker: EmbeddedBroker | null = null;
  http: HttpServer | null = null;
  pipeline: Pipeline | null = null;
  /** Every output (src/outputs/index.ts), behind the one sink the pipeline publishes to. */
  outputs: FanOutSink | null = null;
  readonly metrics = new Metrics();
  readonly cameras = new Map<string, SupervisedCamera>();
  notifier: SystemdNotifier;
  ready = false;
  private readonly parts: Required<Pick<DaemonDeps, 'publisher' | 'camera'>>;
  private readonly extraOutputs: readonly Output[];
  /** The model each camera is scored by now; a camera without an entry has none (UnscoredCamera). */
  private readonly camModels = new Map<string, LoadedModel>();
  /** Why a camera's configured model is not the one in use (failed load at start or at SIGHUP). */
  private readonly modelErrors = new Map<string, string>();
  /** Threshold overrides (docs/configuration.md, "Threshold override"): cameras[].threshold, and console/MQTT ones
   *  that last until the next SIGHUP or restart. */
  private readonly configThresholds = new Map<string, number>();
  private readonly runtimeThresholds = new Map<string, number>();
  /** The threshold each camera is judged at now, as last applied (to log and publish changes only). */
  private readonly appliedThresholds = new Map<string, ActiveThreshold>();
  private statusTimer: NodeJS.Timeout | null = null;
  /** The camera state every output reports (docs/mqtt.md, "Status debounce"). */
  private readonly hold: FailedStateHold;
  private stopped = false;
  private readonly startedAt = Date.now();

  constructor(
    private config: DaemonConfig,
    private readonly log: Logger,
    deps: DaemonDeps = {},
  ) {
    this.notifier = new SystemdNotifier(deps.env ?? process.env, log);
    this.parts = { publisher: deps.publisher ?? defaultParts.publisher, camera: deps.camera ?? defaultParts.camera };
    this.extraOutputs = deps.sinks ?? [];
    this.hold = new FailedStateHold(config.status.failedHoldMs);
  }

  /** The camera's state as reported everywhere: a failed camera's reconnect attempts stay `failed`. */
  reportedState(cam: SupervisedCamera, now = Date.now()): ReportedState {
    return this.hold.view(cam.id, { state: cam.state, error: cam.error, since: cam.since }, now);
  }

  /**
   * The default model for what describes the node as a whole (console overview, Sparkplug NBIRTH): model.dir's
   * when a camera uses it, else the first camera's.
   */
  primaryModel(): LoadedModel | null {
    const all = this.models?.all() ?? [];
    let dir: string | null = null;
    try {
      dir = modelKey(this.config.model.dir);
    } catch {
      // model.dir unreadable: not the primary then
    }
    return all.find((m) => m.key === dir) ?? all[0] ?? null;
  }

  /**
   * Loads every camera's model, each distinct folder once. A camera whose model fails keeps no model (it is
   * reported `failed` with the reason, the others run); when no camera gets one, throws ModelError (exit 3).
   */
  private async loadCameraModels(cameras: readonly CameraConfig[]): Promise<void> {
    const models = this.models as ModelSet;
    const failedDirs = new Map<string, string>();
    for (const cam of cameras) {
      const dir = modelDirOf(cam, this.config.model.dir);
      const known = failedDirs.get(dir);
      if (known !== undefined) {
        this.modelErrors.set(cam.id, `camera ${cam.id}: ${known}`);
        continue;
      }
      try {
        this.camModels.set(cam.id, await models.acquire(dir, cam.id));
      } catch (err) {
        if (!(err instanceof ModelError)) throw err;
        failedDirs.set(dir, err.message.replace(`camera ${cam.id}: `, ''));
        this.modelErrors.set(cam.id, err.message);
        this.log.error({ camera: cam.id, modelDir: dir, err: err.message }, 'model cannot be loaded: camera not started, the others run');
      }
    }
    if (this.camModels.size === 0) throw new ModelError([...new Set(this.modelErrors.values())].join('; '));
  }

  /** Throws ModelError (exit 3) or Error (exit 1). */
  async start(): Promise<void> {
    const c = this.config;
    this.models = new ModelSet({ providers: c.model.providers, maxBatch: c.model.maxBatch, tensorrt: c.model.tensorrt }, this.log);
    await this.loadCameraModels(c.cameras);
    const primary = this.primaryModel() as LoadedModel;
    // HTTP before MQTT: a port already taken is a start-up error that must end the process at once, not after the
    // broker connection has been tried (docs/daemon.md, exit codes). Outputs' routes (the console) are attached once made.
    const routes = consoleWanted(c) ? (req: IncomingMessage, res: ServerResponse): boolean => this.outputs?.handleHttp(req, res) ?? false : null;
    if (c.http.port > 0) this.http = await startHttp(c.http.host, c.http.port, () => this.health(), this.metrics, this.log, routes);
    let url = c.mqtt.url;
    if (url === '') {
      this.broker = await startEmbeddedBroker(c.mqtt.embeddedHost, c.mqtt.embeddedPort, this.log);
      url = this.broker.url;
    }
    const cameras = () => [...this.cameras.values()].map((cam) => ({ ...this.cameraStatus(cam), ng: this.pipeline?.counter(cam.id).ng ?? 0 }));
    const built: Outputs = buildOutputs({ config: c, mqttUrl: url, embeddedBroker: this.broker !== null, primaryModel: primary, metrics: this.metrics, log: this.log,
      daemon: { health: () => this.health(), cameras, setThreshold: (cam, v, via) => this.setRuntimeThreshold(cam, v, via) }, publisher: this.parts.publisher, extra: this.extraOutputs });
    this.publisher = built.mqtt;
    this.outputs = built.all;
    this.pipeline = new Pipeline(this.outputs, this.metrics, { rejectDeadlineMs: c.reject.deadlineMs, snapshot: c.snapshot, drift: c.drift }, this.log);
    this.pipeline.start();
    this.setConfigThresholds(c.cameras);
    for (const cam of c.cameras) this.addCamera(cam, this.camModels.get(cam.id) ?? null);
    this.statusTimer = setInterval(() => this.periodicStatus(), c.status.intervalMs);
    void this.publisher.waitConnected().then(() => {
      if (this.stopped || this.ready) return;
      this.ready = true;
      this.metrics.ready.set(1);
      this.outputs?.ready();
      this.log.info({ models: this.models?.info().map((x) => ({ name: x.name, provider: x.provider, cameras: x.cameras })) }, 'ready: models warm, broker connected');
      void this.notifier.ready(this.summary());
      this.notifier.startWatchdog(() => this.processingHealth());
    });
  }

  /** Starts a camera scored by `model`; without one it is only reported (UnscoredCamera, state failed). */
  private addCamera(cfg: CameraConfig, model: LoadedModel | null): void {
    let cam: SupervisedCamera;
    if (model) {
      const f = model.engine.manifest;
      cam = this.parts.camera(cfg, { width: f.width, height: f.height }, this.config.ingest, this.log);
      this.camModels.set(cfg.id, model);
      this.pipeline?.addCamera(cam, model.engine);
      this.applyThreshold(cfg.id, cam);
    } else {
      cam = new UnscoredCamera(cfg, this.modelErrors.get(cfg.id) ?? 'no model');
    }
    this.cameras.set(cfg.id, cam);
    cam.on('repeat', () => this.metrics.repeated.inc({ camera: cam.id }));
    cam.on('state', (state) => {
      for (const s of CAMERA_STATES) this.metrics.cameraState.set({ camera: cam.id, state: s }, s === state ? 1 : 0);
      this.metrics.cameraRestarts.set({ camera: cam.id }, cam.restarts);
      // Only a change of the reported state is published on a state event; counters follow with the periodic status.
      const s = this.cameraStatus(cam);
      if (!this.hold.isPublished(cam.id, s)) this.publishCameraStatus(s);
    });
    this.outputs?.cameraAdded(this.cameraStatus(cam));
    const mf = model?.engine.manifest;
    this.log.info({ camera: cfg.id, url: redactUrl(cfg.url), roi: cfg.roi, fps: cfg.fps, decoder: cfg.decoder, model: mf ? `${mf.name} ${mf.version}` : null, modelDir: model?.dir ?? null }, 'camera added');
    cam.start();
  }

  /** Stops the camera and forgets it everywhere; its model is left to the caller (releaseModel). */
  private async removeCamera(id: string): Promise<void> {
    const cam = this.cameras.get(id);
    if (!cam) return;
    this.cameras.delete(id);
    this.camModels.delete(id);
    this.appliedThresholds.delete(id);
    this.metrics.threshold.remove({ camera: id });
    this.metrics.driftShare.remove({ camera: id });
    this.hold.forget(id);
    this.pipeline?.removeCamera(id);
    this.outputs?.cameraRemoved(id);
    await cam.stop();
    this.outputs?.forgetCamera(id);
    this.log.info({ camera: id }, 'camera removed');
  }

  /** The camera no longer uses `m`: once no batch of it is running, the session is closed if no camera uses it. */
  private async releaseModel(m: LoadedModel, camera: string): Promise<void> {
    await this.pipeline?.settled(m.engine);
    await this.models?.release(m, camera);
  }

  /**
   * SIGHUP: applies a new camera list and re-reads every camera's model folder. Unchanged cameras keep streaming;
   * a camera whose model folder changed (another path, or new content behind the same path) gets the new model,
   * in place when the input size is the same, else with a decoder restart at the new size. A camera whose new
   * model fails to load keeps its old model and reports why (status `modelError`, /healthz `modelErrors`).
   */
  async reloadCameras(next: CameraConfig[], defaultModelDir = this.config.model.dir): Promise<ReloadResult> {
    const models = this.models as ModelSet;
    const byId = new Map(next.map((c) => [c.id, c]));
    const running = new Map([...this.cameras].map(([id, cam]) => [id, { config: cam.config, modelKey: this.camModels.get(id)?.key ?? null }]));
    const plan = planReload(running, next, defaultModelDir, (dir) => {
      try {
        return modelKey(dir);
      } catch {
        return null; // acquire() below reports it with the camera and folder
      }
    });
    const thresholdsBefore = new Map([...this.appliedThresholds].map(([id, t]) => [id, `${t.raw}/${t.source}`]));
    // The config is the truth again: run-time overrides (console, MQTT) end here.
    this.runtimeThresholds.clear();
    this.setConfigThresholds(next);
    for (const id of plan.removed) {
      const old = this.camModels.get(id);
      await this.removeCamera(id);
      this.modelErrors.delete(id);
      if (old) await this.releaseModel(old, id);
    }
    // Each kept or added camera: the model its folder holds now (loaded once per folder and content).
    const want = new Map<string, LoadedModel | null>();
    for (const id of plan.keepModel) {
      want.set(id, this.camModels.get(id) ?? null);
      this.modelErrors.delete(id);
    }
    const outcomes: ModelOutcome[] = [];
    for (const { id, dir } of plan.loadModel) {
      const cur = this.camModels.get(id) ?? null;
      const size = (m: LoadedModel | null) => (m ? { width: m.engine.manifest.width, height: m.engine.manifest.height } : null);
      try {
        const m = await models.acquire(dir, id);
        want.set(id, m);
        this.modelErrors.delete(id);
        outcomes.push({ id, loaded: size(m), current: size(cur), running: this.cameras.has(id) });
      } catch (err) {
        if (!(err instanceof ModelError)) throw err;
        want.set(id, cur);
        this.modelErrors.set(id, err.message);
        outcomes.push({ id, loaded: null, current: size(cur), running: this.cameras.has(id) });
        this.log.error({ camera: id, modelDir: dir, err: err.message }, cur ? 'new model cannot be loaded: the camera keeps its current model' : 'model cannot be loaded: camera not started');
      }
    }
    const mp = planModels(plan, outcomes);
    for (const id of mp.swapped) {
      const cur = this.camModels.get(id) as LoadedModel;
      const m = want.get(id) as LoadedModel;
      if (mp.inPlace.includes(id)) {
        this.pipeline?.setModel(id, m.engine);
        this.camModels.set(id, m);
        this.applyThreshold(id);
        const cam = this.cameras.get(id);
        if (cam) this.publishCameraStatus(this.cameraStatus(cam));
        await this.releaseModel(cur, id); // after its batch in flight, if any
      }
      const same = cur.engine.manifest.width === m.engine.manifest.width && cur.engine.manifest.height === m.engine.manifest.height;
      this.log.info({ camera: id, from: `${cur.engine.manifest.name} ${cur.engine.manifest.version}`, to: `${m.engine.manifest.name} ${m.engine.manifest.version}`, modelDir: m.dir, inPlace: same && !plan.changed.includes(id) }, 'camera model swapped');
    }
    for (const id of mp.restart) {
      const old = this.camModels.get(id);
      await this.removeCamera(id);
      this.addCamera(byId.get(id) as CameraConfig, want.get(id) ?? null);
      if (old && old !== want.get(id)) await this.releaseModel(old, id);
    }
    this.config = { ...this.config, cameras: next, model: { ...this.config.model, dir: defaultModelDir } };
    for (const [id, cam] of this.cameras) this.applyThreshold(id, cam);
    const r: ReloadResult = { added: plan.added, removed: plan.removed, changed: plan.changed, swapped: mp.swapped, modelFailed: mp.modelFailed, threshold: [] };
    for (const [id, t] of this.appliedThresholds) if (thresholdsBefore.get(id) !== `${t.raw}/${t.source}`) r.threshold.push(id);
    this.log.info({ ...r, models: models.info().map((m) => ({ name: m.name, version: m.version, cameras: m.cameras })) }, 'camera list and models reloaded');
    return r;
  }

  private setConfigThresholds(cameras: readonly CameraConfig[]): void {
    this.configThresholds.clear();
    for (const c of cameras) if (c.threshold !== undefined) this.configThresholds.set(c.id, c.threshold);
  }

  /** The threshold a camera is judged at: run-time override, else cameras[].threshold, else its model's; null without a model. */
  activeThreshold(camera: string): ActiveThreshold | null {
    const m = this.camModels.get(camera);
    if (!m) return null;
    const model = m.engine.manifest.threshold;
    const rt = this.runtimeThresholds.get(camera);
    if (rt !== undefined) return { raw: rt, source: 'runtime', model };
    const cfg = this.configThresholds.get(camera);
    if (cfg !== undefined) return { raw: cfg, source: 'config', model };
    return { raw: model, source: 'model', model };
  }

  /** Hands the camera's active threshold to the pipeline; a change is logged and published (status, Sparkplug, metrics). */
  private applyThreshold(camera: string, cam = this.cameras.get(camera), via = 'config'): void {
    const t = this.activeThreshold(camera);
    if (!t) return;
    // The pipeline takes the raw threshold the camera's frames are judged at; the model's own needs no override.
    this.pipeline?.setThreshold(camera, t.source === 'model' ? null : t.raw);
    this.metrics.threshold.set({ camera }, t.raw);
    const before = this.appliedThresholds.get(camera);
    this.appliedThresholds.set(camera, t);
    if (before && before.raw === t.raw && before.source === t.source) return;
    if (before || t.source !== 'model') {
      this.log.info({ camera, threshold: t.raw, source: t.source, modelThreshold: t.model, previous: before ? { threshold: before.raw, source: before.source } : null, via }, 'camera threshold set');
    }
    if (before && cam) this.publishCameraStatus(this.cameraStatus(cam));
  }

  /**
   * A run-time threshold (console, MQTT command): `null` returns to cameras[].threshold or the model's. Lasts until the
   * next SIGHUP or restart (docs/configuration.md, "Threshold override"). Throws ThresholdError naming the camera
   * and the value for anything else than a finite raw score >= 0, or a camera that is not scoring.
   */
  setRuntimeThreshold(camera: string, value: unknown, via: string): ActiveThreshold {
    if (!this.cameras.has(camera)) throw new ThresholdError(`camera ${camera}: no such camera (cameras: ${[...this.cameras.keys()].join(', ') || 'none'})`);
    if (!this.camModels.has(camera)) throw new ThresholdError(`camera ${camera}: has no model (${this.modelErrors.get(camera) ?? 'no model'}): no threshold to set`);
    if (value === null) this.runtimeThresholds.delete(camera);
    else this.runtimeThresholds.set(camera, parseThreshold(camera, value));
    this.applyThreshold(camera, this.cameras.get(camera), via);
    return this.activeThreshold(camera) as ActiveThreshold;
  }

  private publishCameraStatus(s: CameraStatusMessage): void {
    this.hold.notePublished(s.camera, s);
    this.outputs?.publishCameraStatus(s);
  }

  cameraStatus(cam: SupervisedCamera): CameraStatusMessage {
    const c = this.pipeline?.counter(cam.id) ?? { captured: 0, processed: 0, dropped: 0, ng: 0 };
    const loaded = this.camModels.get(cam.id);
    const m = loaded?.engine.manifest;
    const shown = this.reportedState(cam);
    const s: CameraStatusMessage = {
      camera: cam.id,
      state: shown.state,
      fps: Math.round(cam.fps() * 10) / 10,
      captured: c.captured,
      processed: c.processed,
      dropped: c.dropped,
      repeated: cam.repeated,
      provider: loaded?.engine.provider ?? 'none',
      model: { name: m?.name ?? '', version: m?.version ?? '' },
      since: shown.since,
    };
    if (shown.error) s.error = shown.error;
    const modelError = this.modelErrors.get(cam.id);
    if (modelError) s.modelError = modelError;
    Object.assign(s, this.outputs?.cameraStatusExtras(cam.id));
    const threshold = this.activeThreshold(cam.id);
    if (threshold) s.threshold = threshold;
    const drift = this.pipeline?.driftOf(cam.id);
    if (drift) {
      s.drift = drift;
      if (drift.share !== null) this.metrics.driftShare.set({ camera: cam.id }, drift.share);
    }
    return s;
  }

  /** The daemon's state as the health rules read it (src/health/rules.ts). */
  private healthSnapshot(now: number): HealthSnapshot {
    const primary = this.primaryModel();
    const modelErrors = Object.fromEntries(this.modelErrors);
    const cameras: CameraHealthView[] = [...this.cameras.values()].map((c) => ({
      id: c.id,
      state: c.state,
      error: c.error,
      reported: this.reportedState(c, now),
      hasModel: this.camModels.has(c.id),
      modelError: this.modelErrors.get(c.id),
      lastFrameAt: c.lastFrameAt,
      lastNewFrameAt: c.lastNewFrameAt,
    }));
    const outputs = this.outputs?.health();
    return {
      now,
      ready: this.ready,
      modelsLoaded: this.camModels.size > 0,
      mqttConnected: this.publisher?.connected ?? false,
      processing: this.pipeline !== null,
      lastProcessedAt: this.pipeline?.lastProcessedAt ?? 0,
      stallTimeoutMs: this.config.ingest.stallTimeoutMs,
      cameras,
      outputsDegraded: outputs?.degraded ?? [],
      fields: {
        provider: primary?.engine.provider ?? null,
        // Every loaded model with the cameras it scores (docs/daemon.md, /healthz); modelErrors: cameras whose
        // configured model is not in use, and why.
        models: this.models?.info() ?? [],
        ...(this.modelErrors.size > 0 ? { modelErrors } : {}),
        mqttConnected: this.publisher?.connected ?? false,
        cameras: Object.fromEntries(cameras.map((c) => [c.id, c.reported.state])),
        lastProcessedAt: this.pipeline?.lastProcessedAt || null,
        uptimeS: Math.round((now - this.startedAt) / 1000),
        ...outputs?.fields, // e.g. Sparkplug / Modbus link states (informational, not part of ok)
      },
    };
  }

  /** Frames really being processed (the systemd watchdog's rule, src/health/rules.ts). */
  processingHealth(now = Date.now()): { ok: boolean; reason?: string } {
    return processingHealth(this.healthSnapshot(now));
  }

  /** Why the daemon works but not fully (src/health/rules.ts). */
  degradedReasons(now = Date.now()): string[] {
    return degradedReasons(this.healthSnapshot(now));
  }

  /** /healthz and the console's badge (src/health/rules.ts). */
  health(now = Date.now()): Health {
    return healthOf(this.healthSnapshot(now));
  }

  summary(): string {
    const cams = [...this.cameras.values()];
    const loaded = this.models?.all() ?? [];
    return summaryLine({
      cameras: cams.map((c) => ({ id: c.id, state: c.state, fps: c.fps() })),
      counters: this.pipeline?.counters.values() ?? [],
      models: loaded.map((m) => ({ name: m.engine.manifest.name, provider: m.engine.provider, p50: this.pipeline?.inferenceP50(m.engine) ?? 0 })),
      p50All: this.pipeline?.inferenceP50() ?? 0,
      mqttConnected: this.publisher?.connected ?? false,
    });
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
    // Final statuses and MQTT "offline", coils OFF, Sparkplug NDEATH, the console's last capture write.
    await this.outputs?.close([...this.cameras.values()].map((c) => this.cameraStatus(c)), 1500);
    await this.http?.close();
    await this.broker?.close();
    await this.models?.closeAll();
    this.log.info(this.summary());
  }
}
