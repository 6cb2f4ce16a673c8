/** Prometheus metrics (prom-client), served on /metrics. */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class Metrics {
  readonly registry = new Registry();
  readonly captured = new Counter({ name: 'etstpm_frames_captured_total', help: 'Frames read from the camera decoder', labelNames: ['camera'], registers: [this.registry] });
  readonly processed = new Counter({ name: 'etstpm_frames_processed_total', help: 'Frames scored by the model', labelNames: ['camera'], registers: [this.registry] });
  readonly dropped = new Counter({
    name: 'etstpm_frames_dropped_total',
    help: 'Frames replaced by a newer one before inference (backpressure)',
    labelNames: ['camera'],
    registers: [this.registry],
  });
  readonly repeated = new Counter({
    name: 'etstpm_frames_repeated_total',
    help: 'RTSP frames showing the same image as the last scored one (within ingest.frozenTolerance; not scored; a frozen camera sends only these)',
    labelNames: ['camera'],
    registers: [this.registry],
  });
  readonly verdicts = new Counter({ name: 'etstpm_verdicts_total', help: 'Verdicts per camera', labelNames: ['camera', 'verdict'], registers: [this.registry] });
  readonly cameraState = new Gauge({
    name: 'etstpm_camera_state',
    help: '1 for the current state of each camera',
    labelNames: ['camera', 'state'],
    registers: [this.registry],
  });
  readonly cameraRestarts = new Gauge({ name: 'etstpm_camera_decoder_restarts', help: 'Decoder restarts per camera', labelNames: ['camera'], registers: [this.registry] });
  readonly inferenceSeconds = new Histogram({
    name: 'etstpm_inference_seconds',
    help: 'onnxruntime session.run time per batch, by model (name, version) and batch size',
    labelNames: ['batch', 'model', 'version'],
    buckets: [0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5],
    registers: [this.registry],
  });
  readonly frameToPublishSeconds = new Histogram({
    name: 'etstpm_frame_to_publish_seconds',
    help: 'From the frame leaving the decoder to its result being published',
    buckets: [0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2, 5],
    registers: [this.registry],
  });
  readonly mqttUnsent = new Counter({
    name: 'etstpm_mqtt_unsent_total',
    help: 'Messages not sent because the broker was unreachable (never queued)',
    labelNames: ['kind'],
    registers: [this.registry],
  });
  readonly mqttConnected = new Gauge({ name: 'etstpm_mqtt_connected', help: '1 while connected to the broker', registers: [this.registry] });
  readonly ready = new Gauge({ name: 'etstpm_ready', help: '1 once model is warm and broker connected', registers: [this.registry] });
  readonly threshold = new Gauge({
    name: 'etstpm_camera_threshold_raw',
    help: 'Raw-score decision threshold each camera is judged at now (model.json, cameras[].threshold or a run-time override)',
    labelNames: ['camera'],
    registers: [this.registry],
  });
  readonly driftShare = new Gauge({
    name: 'etstpm_drift_share',
    help: "Share of the camera's recent OK frames scoring at or above its model's calibration quantile (docs/daemon.md, Drift)",
    labelNames: ['camera'],
    registers: [this.registry],
  });
  readonly snapshotsSkipped = new Counter({
    name: 'etstpm_snapshots_skipped_total',
    help: 'Snapshots not rendered (renderer busy or over the size cap)',
    labelNames: ['reason'],
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'etstpm_' });
  }
}
