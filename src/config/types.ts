/** The daemon's validated configuration (docs/configuration.md). */
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
}

export interface DaemonConfig {
  cameras: CameraConfig[];
  model: {
    dir: string;
    providers: Provider[];
    maxBatch: number;
    tensorrt: { cacheDir: string; fp16: boolean };
  };
  mqtt: {
    url: string;
    embeddedPort: number;
    embeddedHost: string;
    username: string;
    password: string;
    ca: string;
    cert: string;
    key: string;
    rejectUnauthorized: boolean;
    topicPrefix: string;
    clientId: string;
    connectTimeoutMs: number;
  };
  reject: { deadlineMs: number };
  snapshot: { onNg: boolean; everyN: number; format: 'jpeg' | 'png'; maxBytes: number };
  ingest: {
    stallTimeoutMs: number;
    connectTimeoutMs: number;
    reconnectMinMs: number;
    reconnectMaxMs: number;
    ffmpegPath: string;
    gstLaunchPath: string;
  };
  http: { host: string; port: number };
  status: { intervalMs: number };
  log: { level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent' };
}
