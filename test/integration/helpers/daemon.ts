// The daemon as a black box: `node dist/src/main.js --config <tmp json>` with a per-test configuration, output
// captured line by line, exit code and signal observed. Nothing from src/ is imported.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DAEMON_MAIN, REPO } from './env';
import { Proc } from './proc';

export interface Camera {
  id: string;
  url: string;
  fps?: number;
  roi?: { x: number; y: number; width: number; height: number };
  transport?: 'tcp' | 'udp';
  decoder?: 'ffmpeg' | 'jetson-gst';
  /** The camera's own model folder (else model.dir). */
  model?: string;
  /** Raw-score threshold override (else the model's). */
  threshold?: number;
}

export type Config = Record<string, unknown>;

/** Defaults every integration test wants: CPU only, quick status, no HTTP unless asked. */
export function baseConfig(o: { cameras: Camera[]; modelDir: string; mqttUrl: string; prefix: string;
  httpPort?: number; extra?: Config }): Config {
  const cfg: Config = {
    cameras: o.cameras,
    model: { dir: o.modelDir, providers: ['cpu'], maxBatch: 4 },
    mqtt: { url: o.mqttUrl, topicPrefix: o.prefix, clientId: `${o.prefix}-daemon` },
    http: { port: o.httpPort ?? 0 },
    status: { intervalMs: 500 },
    // connectTimeoutMs: ffmpeg needs ~3.3 s to its first RTSP frame here (stream analysis), so not lower than that.
    // The reconnect schedule is the default one (0.5, 1, 2, 2 ... s): recovery times measured here are the product's.
    ingest: { stallTimeoutMs: 2000, connectTimeoutMs: 8000 },
    log: { level: 'info' },
  };
  return deepMerge(cfg, o.extra ?? {});
}

function deepMerge(a: Config, b: Config): Config {
  const out: Config = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const cur = out[k];
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && cur && typeof cur === 'object' && !Array.isArray(cur)
      ? deepMerge(cur as Config, v as Config) : v;
  }
  return out;
}

export class Daemon {
  readonly proc: Proc;
  readonly configFile: string;

  constructor(dir: string, config: Config | string, opts: { env?: NodeJS.ProcessEnv; args?: string[]; name?: string; nodeArgs?: string[] } = {}) {
    this.configFile = join(dir, `daemon-${Date.now()}.json`);
    writeFileSync(this.configFile, typeof config === 'string' ? config : JSON.stringify(config, null, 2));
    const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env };
    // A test decides itself whether the daemon sees a notify socket or an inherited ETSTPM_* variable.
    if (!opts.env?.NOTIFY_SOCKET) delete env.NOTIFY_SOCKET;
    if (!opts.env?.WATCHDOG_USEC) { delete env.WATCHDOG_USEC; delete env.WATCHDOG_PID; }
    for (const k of Object.keys(env)) if (k.startsWith('ETSTPM_') && !(opts.env && k in opts.env) && k !== 'ETSTPM_SHARED') delete env[k];
    this.proc = new Proc(opts.name ?? 'daemon', process.execPath,
      [...(opts.nodeArgs ?? []), DAEMON_MAIN, '--config', this.configFile, ...(opts.args ?? [])], { cwd: REPO, env });
  }

  get running(): boolean { return this.proc.running; }
  output(): string { return this.proc.lines.join('\n'); }
  stop(graceMs = 6000) { return this.proc.stop(graceMs); }
}
