/** The daemon's validated configuration (docs/configuration.md). */
import type { ModbusConfig, SparkplugConfig } from '../plc/config';

export type Provider = 'tensorrt' | 'cuda' | 'cpu';
export const PROVIDERS: readonly Provider[] = ['tensorrt', 'cuda', 'cpu'];

export interface Roi {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface CameraConfig {
  id: string;
  url: string;
  /** Frame-rate cap; 0 = take what the source delivers. */
  fps: number;
  roi: Roi | null;
  transport: 'tcp' | 'udp';
  decoder: 'ffmpeg' | 'jetson-gst';
  /** The camera's own model folder; null = the top-level model.dir (docs/configuration.md, "One model per camera"). */
  model: string | null;
  /** Raw-score decision threshold replacing the model's (docs/configuration.md, "Threshold override"); absent = the model's. */
  threshold?: number;
}

export interface DaemonConfig {
  cameras: CameraConfig[];
  model: {
    dir: string;
    providers: Provider[];
    maxBatch: number;
    tensorrt: { cacheDir: string; fp16: boolean };
  };
  /** The publisher's options (protocol version is chosen at connect time) plus the embedded broker's address. */
  mqtt: Omit<MqttOptions, 'protocolVersion'> & { embeddedPort: number; embeddedHost: string };
  reject: { deadlineMs: number };
  snapshot: { onNg: boolean; everyN: number; format: 'jpeg' | 'png'; maxBytes: number };
  ingest: IngestOptions;
  http: { host: string; port: number };
  status: { intervalMs: number; failedHoldMs: number };
  /** Drift of the OK parts' scores per camera (docs/daemon.md, "Drift"). */
  drift: { window: number; warnShare: number };
  // operator console (docs/console.md)
  console: {
    enabled: boolean;
    token: string;
    allowedHosts: string[];
    ngHistory: number;
    trendSeconds: number;
    reviewDir: string;
    mqttCommands: boolean;
    capture: { root: string; everyN: number; maxImages: number; maxBytes: number; minFreeBytes: number };
  };
  /** PLC / SCADA outputs (docs/sparkplug.md, src/plc/config.ts). */
  sparkplug: SparkplugConfig;
  modbus: ModbusConfig;
  log: { level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent' };
}

/** Where and as whom an MQTT connection logs in: shared by the publisher and the Sparkplug edge node. */
export interface MqttConnectionOptions {
  url: string;
  username: string;
  password: string;
  ca: string;
  cert: string;
  key: string;
  rejectUnauthorized: boolean;
  clientId: string;
  connectTimeoutMs: number;
}

export interface MqttOptions extends MqttConnectionOptions {
  topicPrefix: string;
  /** 5 (default) or 4 = MQTT 3.1.1, for brokers without MQTT 5 such as the embedded aedes. */
  protocolVersion?: 4 | 5;
}

export interface IngestOptions {
  stallTimeoutMs: number;
  connectTimeoutMs: number;
  reconnectMinMs: number;
  reconnectMaxMs: number;
  /** RTSP image unchanged (repeats only) for longer than this = frozen (restart the decoder); 0 = never. */
  frozenTimeoutMs: number;
  /**
   * Largest thumbnail block difference (grey levels) that still counts as the same image (a repeat); 0 = only
   * byte-identical frames (docs/daemon.md, "Frozen cameras").
   */
  frozenTolerance: number;
  ffmpegPath: string;
  gstLaunchPath: string;
}
