/**
 * convict schema of the daemon. Every key lists its default, environment variable and command-line flag; the
 * table in docs/configuration.md is this file in prose. Formats throw messages that read well after
 * "config: <key>: " (see load.ts); values of sensitive keys are never echoed.
 */
import convict from 'convict';
import { hostname } from 'node:os';
import { addJsonArrayFormat, unparsable, unparsableReason } from './formats';
import { PROVIDERS } from './types';
import { addPlcFormats, plcSchema } from '../plc/config';

let formatsAdded = false;

function intRange(name: string, min: number, max: number): void {
  convict.addFormat({
    name,
    validate(v: unknown) {
      if (typeof v !== 'number' || !Number.isInteger(v)) throw new Error(`must be an integer (${min}..${max})`);
      if (v < min || v > max) throw new Error(`must be between ${min} and ${max}`);
    },
    coerce: (v: string) => (v.trim() === '' ? NaN : Number(v)),
  });
}

export function addFormats(): void {
  if (formatsAdded) return;
  formatsAdded = true;
  intRange('positive-int', 1, Number.MAX_SAFE_INTEGER);
  intRange('non-negative-int', 0, Number.MAX_SAFE_INTEGER);
  intRange('tcp-port', 0, 65535);
  intRange('batch', 1, 64);
  convict.addFormat({
    name: 'grey-levels',
    validate(v: unknown) {
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 255) throw new Error('must be a number of grey levels between 0 and 255');
    },
    coerce: (v: string) => (v.trim() === '' ? NaN : Number(v)),
  });
  convict.addFormat({
    name: 'strict-boolean',
    validate(v: unknown) {
      if (typeof v !== 'boolean') throw new Error(unparsableReason(v) ?? 'must be true or false');
    },
    coerce(v: string) {
      const s = v.trim().toLowerCase();
      if (s === 'true' || s === '1') return true;
      if (s === 'false' || s === '0') return false;
      return unparsable(`"${v}" is not a boolean (true/false)`);
    },
  });
  addJsonArrayFormat('cameras', '{id, url, ...}');
  convict.addFormat({
    name: 'providers',
    validate(v: unknown) {
      if (!Array.isArray(v) || v.length === 0) throw new Error(`must be a non-empty list of ${PROVIDERS.join(', ')}`);
      const seen = new Set<string>();
      for (const p of v) {
        if (typeof p !== 'string' || !(PROVIDERS as readonly string[]).includes(p)) {
          throw new Error(`unknown execution provider ${JSON.stringify(p)} (known: ${PROVIDERS.join(', ')})`);
        }
        if (seen.has(p)) throw new Error(`execution provider "${p}" listed twice`);
        seen.add(p);
      }
    },
    coerce: (v: string) =>
      v
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s.length > 0),
  });
  convict.addFormat({
    name: 'mqtt-url',
    validate(v: unknown) {
      if (typeof v !== 'string') throw new Error('must be a string');
      if (v === '') return;
      let u: URL;
      try {
        u = new URL(v);
      } catch {
        throw new Error('is not a valid URL (expected mqtt://host:port, mqtts://, ws:// or wss://; "" = embedded broker)');
      }
      if (!['mqtt:', 'mqtts:', 'tcp:', 'ssl:', 'tls:', 'ws:', 'wss:'].includes(u.protocol)) {
        throw new Error(`unsupported scheme "${u.protocol}" (expected mqtt:, mqtts:, ws: or wss:)`);
      }
    },
  });
  convict.addFormat({
    name: 'topic-prefix',
    validate(v: unknown) {
      if (typeof v !== 'string' || v.length === 0) throw new Error('must be a non-empty string');
      // eslint-disable-next-line no-control-regex -- NUL is exactly what this check rejects
      if (/[+#\u0000]/.test(v)) throw new Error('must not contain MQTT wildcards (+, #) or NUL');
      if (v.startsWith('/') || v.endsWith('/')) throw new Error('must not start or end with "/"');
    },
  });
  convict.addFormat({
    name: 'share',
    validate(v: unknown) {
      if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || v > 1) throw new Error('must be a number in (0, 1]');
    },
    coerce: (v: string) => (v.trim() === '' ? NaN : Number(v)),
  });
  convict.addFormat({
    name: 'host-list',
    validate(v: unknown) {
      if (!Array.isArray(v)) throw new Error('must be a list of host names, e.g. ["console.plant.example", "10.0.0.5:8080"]');
      for (const h of v) {
        if (typeof h !== 'string' || !/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+)(:[0-9]{1,5})?$/.test(h.trim())) {
          throw new Error(`${JSON.stringify(h)} is not a host name or host:port (no scheme, no path)`);
        }
      }
    },
    coerce: (v: string) =>
      v
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s.length > 0),
  });
  convict.addFormat({
    name: 'non-empty-string',
    validate(v: unknown) {
      if (typeof v !== 'string' || v.trim().length === 0) throw new Error('must be a non-empty string');
    },
  });
  addPlcFormats(); // PLC / SCADA outputs (docs/sparkplug.md): src/plc/config.ts
}

export const DEFAULT_CAMERAS = [{ id: 'sim-1', url: 'synthetic://' }];

export function buildSchema() {
  addFormats();
  return {
    cameras: {
      doc: 'Cameras: [{id, url, fps?, roi?: {x,y,width,height}, transport?: "tcp"|"udp", decoder?: "ffmpeg"|"jetson-gst", model?: "<model folder>", threshold?: <raw score>}]',
      format: 'cameras',
      default: DEFAULT_CAMERAS as unknown[],
      env: 'ETSTPM_CAMERAS',
      arg: 'cameras',
      // Camera URLs may carry RTSP credentials.
      sensitive: true,
    },
    model: {
      dir: { doc: 'Model folder (etstpm-model/1): the model of every camera without its own cameras[].model', format: 'non-empty-string', default: 'models/demo', env: 'ETSTPM_MODEL_DIR', arg: 'model-dir' },
      providers: {
        doc: 'onnxruntime execution providers, in order of preference',
        format: 'providers',
        default: ['tensorrt', 'cuda', 'cpu'],
        env: 'ETSTPM_MODEL_PROVIDERS',
        arg: 'model-providers',
      },
      maxBatch: { doc: 'Largest batch of frames (one per camera of the same model) per inference run', format: 'batch', default: 4 },
      tensorrt: {
        cacheDir: { doc: 'TensorRT engine cache folder', format: 'non-empty-string', default: '/var/cache/etstpm/trt', env: 'ETSTPM_TRT_CACHE_DIR' },
        fp16: { doc: 'Let TensorRT build fp16 kernels', format: 'strict-boolean', default: true },
      },
    },
    mqtt: {
      url: { doc: 'Broker URL; "" starts the embedded broker', format: 'mqtt-url', default: '', env: 'ETSTPM_MQTT_URL', arg: 'mqtt-url', sensitive: true },
      embeddedPort: { doc: 'Port of the embedded broker', format: 'tcp-port', default: 1883, env: 'ETSTPM_MQTT_EMBEDDED_PORT' },
      embeddedHost: { doc: 'Address the embedded broker listens on', format: 'non-empty-string', default: '127.0.0.1' },
      username: { doc: 'MQTT username', format: String, default: '', env: 'ETSTPM_MQTT_USERNAME' },
      password: { doc: 'MQTT password (never logged)', format: String, default: '', env: 'ETSTPM_MQTT_PASSWORD', sensitive: true },
      ca: { doc: 'CA certificate file (PEM) for TLS', format: String, default: '', env: 'ETSTPM_MQTT_CA' },
      cert: { doc: 'Client certificate file (PEM) for TLS', format: String, default: '', env: 'ETSTPM_MQTT_CERT' },
      key: { doc: 'Client key file (PEM) for TLS', format: String, default: '', env: 'ETSTPM_MQTT_KEY' },
      rejectUnauthorized: { doc: 'Verify the broker certificate', format: 'strict-boolean', default: true },
      topicPrefix: { doc: 'Topic prefix', format: 'topic-prefix', default: 'etstpm', env: 'ETSTPM_MQTT_TOPIC_PREFIX', arg: 'mqtt-topic-prefix' },
      clientId: { doc: 'MQTT client id', format: 'non-empty-string', default: `etstpm-edge-${hostname()}` },
      connectTimeoutMs: { doc: 'Timeout of one connection attempt', format: 'positive-int', default: 10000 },
    },
    reject: {
      deadlineMs: { doc: 'A reject message is void this long after capture', format: 'positive-int', default: 500 },
    },
    snapshot: {
      onNg: { doc: 'Publish a snapshot for every NG frame', format: 'strict-boolean', default: true },
      everyN: { doc: 'Also publish every Nth frame per camera (0 = off)', format: 'non-negative-int', default: 0 },
      format: { doc: 'Snapshot image format', format: ['jpeg', 'png'], default: 'jpeg' },
      maxBytes: { doc: 'Size cap of a snapshot payload', format: 'positive-int', default: 262144 },
    },
    ingest: {
      stallTimeoutMs: { doc: 'No frame for this long while streaming = stalled (restart source)', format: 'positive-int', default: 5000 },
      connectTimeoutMs: { doc: 'No first frame within this long = connection failed', format: 'positive-int', default: 10000 },
      reconnectMinMs: { doc: 'First reconnect delay', format: 'positive-int', default: 500 },
      // 2 s: a camera that returns streams again within ~3 s (delay + connect), one attempt per 2 s to one that stays down.
      reconnectMaxMs: { doc: 'Largest reconnect delay (exponential backoff)', format: 'positive-int', default: 2000 },
      frozenTimeoutMs: {
        doc: 'RTSP image unchanged (repeated frames only) this long = frozen, decoder restarted (0 = never)',
        format: 'non-negative-int',
        default: 30000,
      },
      // Measured margins: docs/daemon.md, "Frozen cameras" (bench/results/frozen-tolerance.json).
      frozenTolerance: {
        doc: 'RTSP frame = repeat of the last scored one when no 32x32 grey block mean differs by more than this many grey levels (0 = byte-identical only)',
        format: 'grey-levels',
        default: 8,
      },
      ffmpegPath: { doc: 'ffmpeg executable', format: 'non-empty-string', default: 'ffmpeg', env: 'ETSTPM_FFMPEG' },
      gstLaunchPath: { doc: 'gst-launch-1.0 executable (decoder "jetson-gst")', format: 'non-empty-string', default: 'gst-launch-1.0' },
    },
    http: {
      host: { doc: 'Address of /healthz and /metrics', format: 'non-empty-string', default: '127.0.0.1' },
      port: { doc: 'Port of /healthz and /metrics (0 = off)', format: 'tcp-port', default: 9464, env: 'ETSTPM_HTTP_PORT', arg: 'http-port' },
    },
    // --- operator console (docs/console.md) ---
    console: {
      enabled: { doc: 'Serve the operator console at / on the HTTP server (http.host/http.port)', format: 'strict-boolean', default: true, env: 'ETSTPM_CONSOLE_ENABLED' },
      token: {
        doc: 'Bearer token for control actions (capture, false reject); "" = none: control only while http.host is loopback',
        format: String,
        default: '',
        env: 'ETSTPM_CONSOLE_TOKEN',
        sensitive: true,
      },
      allowedHosts: {
        doc: 'More Host names ("name" or "name:port") the console answers to, beside the address it is reached on (a reverse proxy, a DNS name, a port forward)',
        format: 'host-list',
        default: [] as string[],
        env: 'ETSTPM_CONSOLE_ALLOWED_HOSTS',
      },
      ngHistory: { doc: 'NG frames kept in memory per camera for review', format: 'non-negative-int', default: 20 },
      trendSeconds: { doc: 'Score trend window per camera (seconds)', format: 'positive-int', default: 300 },
      reviewDir: { doc: 'Folder for frames marked "false reject" (<dir>/<camera>/false-reject/)', format: 'non-empty-string', default: 'review', env: 'ETSTPM_CONSOLE_REVIEW_DIR' },
      mqttCommands: { doc: 'Accept commands on P/<camera>/command', format: 'strict-boolean', default: true },
      capture: {
        root: { doc: 'Dataset root of "capture good parts": <root>/<camera>/train/good/*.png', format: 'non-empty-string', default: 'captures', env: 'ETSTPM_CAPTURE_ROOT' },
        everyN: { doc: 'Default: write every Nth scored frame', format: 'positive-int', default: 5 },
        maxImages: { doc: 'Cap (and default) of images per capture run', format: 'positive-int', default: 500 },
        maxBytes: { doc: 'Cap (and default) of bytes written per capture run', format: 'positive-int', default: 536870912 },
        minFreeBytes: { doc: 'Refuse to start, and stop, below this much free disk space', format: 'non-negative-int', default: 67108864 },
      },
    },
    status: {
      intervalMs: { doc: 'Camera status topic, log summary and systemd STATUS= period', format: 'positive-int', default: 5000 },
      failedHoldMs: {
        doc: 'A failed camera\'s reconnect attempts are reported as "failed" until it streams or one attempt stays "connecting" this long (0 = report every state)',
        format: 'non-negative-int',
        default: 30000,
      },
    },
    // Drift of good parts' scores (docs/daemon.md, "Drift"); read at start, not at SIGHUP.
    drift: {
      window: { doc: 'OK frames per camera in the drift window', format: 'positive-int', default: 500 },
      warnShare: { doc: 'Share of the window above the calibration quantile that logs a drift warning (recovered below half of it)', format: 'share', default: 0.25 },
    },
    // PLC / SCADA outputs (docs/sparkplug.md): `sparkplug` and `modbus` blocks, src/plc/config.ts
    ...plcSchema(),
    log: {
      level: {
        doc: 'Log level',
        format: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
        default: 'info',
        env: 'ETSTPM_LOG_LEVEL',
        arg: 'log-level',
      },
    },
  };
}

export type DaemonSchema = ReturnType<typeof buildSchema>;

/** One configuration key: its dotted path and its schema entry (every entry has a `doc`). */
export interface SchemaLeaf {
  key: string;
  spec: { doc: string; arg?: string; env?: string };
}

/** Every key of the schema, depth first in declaration order. */
export function schemaLeaves(schema: object, prefix = ''): SchemaLeaf[] {
  const out: SchemaLeaf[] = [];
  for (const [name, value] of Object.entries(schema)) {
    const key = prefix + name;
    if (typeof (value as { doc?: unknown }).doc === 'string') out.push({ key, spec: value as SchemaLeaf['spec'] });
    else out.push(...schemaLeaves(value as object, `${key}.`));
  }
  return out;
}

/** The command-line flags convict reads (each takes a value): the schema's `arg` entries, for strict parsing. */
export function valueFlags(schema: object): string[] {
  return schemaLeaves(schema).flatMap((l) => (l.spec.arg === undefined ? [] : [l.spec.arg]));
}
